"""`clip-lora predict`: the onnx graph when the export holds one (clip_lora/onnx_predict.py, no torch imported),
else the torch model (clip_lora/predict.py). Flags are parsed first, by the one parser both paths share."""

from __future__ import annotations

from clip_lora.onnx_flags import uses_onnx
from clip_lora.verb_args import predict_args


def main(argv: list[str] | None = None):
    args = predict_args(argv)
    if uses_onnx(args):
        from clip_lora import onnx_predict

        return onnx_predict.main(args)
    from clip_lora import predict, progress  # torch, transformers, peft: imported only on this path

    progress.configure_libraries()
    return predict.main(argv)
