"""The loss and metric names Keras 3 accepts as strings, so `check` refuses a misspelt one
without importing TensorFlow. A test compares these lists with Keras's own registries.

Only names that work on a dense network's output without further arguments are listed: CTC and
the thresholded or IoU metrics that need a value of their own (recall at a precision, classes)
are left out. Keras logs a metric under the name it was given, so these are also the names the
monitor keys can use.
"""

from __future__ import annotations

LOSS_NAMES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "bce",
    "categorical_focal_crossentropy",
    "binary_focal_crossentropy",
    "mean_squared_error",
    "mse",
    "mean_absolute_error",
    "mae",
    "mean_absolute_percentage_error",
    "mape",
    "mean_squared_logarithmic_error",
    "msle",
    "huber",
    "log_cosh",
    "poisson",
    "kl_divergence",
    "kld",
    "cosine_similarity",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "dice",
    "tversky",
)

METRIC_NAMES = (
    "accuracy",
    "acc",
    "sparse_categorical_accuracy",
    "categorical_accuracy",
    "binary_accuracy",
    "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "bce",
    "mean_squared_error",
    "mse",
    "root_mean_squared_error",
    "mean_absolute_error",
    "mae",
    "mean_absolute_percentage_error",
    "mape",
    "mean_squared_logarithmic_error",
    "msle",
    "log_cosh_error",
    "r2_score",
    "cosine_similarity",
    "kl_divergence",
    "poisson",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "auc",
    "precision",
    "recall",
    "true_positives",
    "true_negatives",
    "false_positives",
    "false_negatives",
    "pearson_correlation",
    "concordance_correlation",
)

# dnnlab gives classification integer labels and, unless the spec sets the output, one softmax
# unit per class. Against that pair Keras computes only the sparse names; every other loss and
# most metrics fail on the label shape at the first batch, after the run directory exists.
SPARSE_LABEL_LOSSES = ("sparse_categorical_crossentropy",)
SPARSE_LABEL_METRICS = (
    "accuracy",
    "acc",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "sparse_categorical_crossentropy",
)
# A regression target (one float per row) takes every loss but the sparse cross-entropy, and
# every metric but the cross-entropies and top-k accuracies, which need class scores.
REGRESSION_LOSSES = tuple(n for n in LOSS_NAMES if n != "sparse_categorical_crossentropy")
_CLASS_SCORE_METRICS = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "bce",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
)
REGRESSION_METRICS = tuple(n for n in METRIC_NAMES if n not in _CLASS_SCORE_METRICS)
