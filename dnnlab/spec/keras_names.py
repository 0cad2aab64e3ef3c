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
