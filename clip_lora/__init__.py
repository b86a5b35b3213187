"""clip_lora: LoRA fine-tuning of CLIP for image classification, the Hugging Face way.

    clip-lora train imagenette_vitb16                 # or: accelerate launch train_clip_lora.py
    clip-lora --help                                  # every verb

One module per job; `clip_lora.cli` is the command, `train_clip_lora.main` the training pipeline.
"""

__version__ = "0.2.0"
