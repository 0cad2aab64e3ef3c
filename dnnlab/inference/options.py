"""The values the inference commands' options accept, and their defaults.

Plain constants, importing nothing: the command line builds its choices from them at import, so
`dnnlab --help` lists exactly what the library accepts without loading TensorFlow or NumPy.
"""

# mc-predict --sample: which dropout layers sample (the others run in inference mode, as in
# `model.predict`): every one; those after the first dense layer (not the input's); the last one.
SAMPLE_CHOICES = ("all", "hidden", "last")
DEFAULT_SAMPLE = "all"

# mc-predict --seed: the same masks on every call unless asked otherwise, so reruns give the same file.
DEFAULT_SEED = 0

# evaluate --checkpoint: model.keras, checkpoints/best.keras, checkpoints/last.keras.
CHECKPOINTS = ("final", "best", "last")
DEFAULT_CHECKPOINT = "final"

# export --format and --quantize (TFLite only).
EXPORT_FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("float16", "int8")
