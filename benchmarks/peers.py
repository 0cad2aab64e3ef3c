"""Géron's batch-norm model outside dnnlab, and the matmul floor of its epoch.

Each function runs in a fresh child process of train_throughput.py and imports its framework
itself: the Keras backend is fixed when Keras is first imported (KERAS_BACKEND, set by the parent),
and a JAX or PyTorch child need not pay for TensorFlow. Each returns per-epoch wall and process CPU
seconds.
"""

from __future__ import annotations

import time

SEED = 42
# The benchmark-only frameworks and how to get them: one line the script prints when they are missing.
INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install -e '.[bench]'"


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds; CPU time is the steadier figure when others load the machine."""
    return time.perf_counter(), time.process_time()


class Epochs:
    """Per-epoch wall and CPU seconds, from a start mark to an end mark."""

    def __init__(self):
        self.seconds: list[float] = []
        self.cpu: list[float] = []

    def begin(self) -> None:
        self._start = clock()

    def end(self) -> None:
        wall, cpu = clock()
        self.seconds.append(wall - self._start[0])
        self.cpu.append(cpu - self._start[1])

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "cpu": self.cpu}


def keras_timer(epochs: Epochs):
    """A Keras callback that times each epoch from `on_epoch_begin` to `on_epoch_end` into `epochs`."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs.begin()

        def on_epoch_end(self, epoch, logs=None):
            epochs.end()

    return Timer()


def geron_model():
    """The batch-norm model exactly as Géron writes it (with keras.Input for Keras 3)."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Flatten(),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(300, activation="elu", kernel_initializer="he_normal"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(100, activation="elu", kernel_initializer="he_normal"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Nadam(), metrics=["accuracy"]
    )
    return model


def geron_dropout_model():
    """Géron's dropout model: 784 -> Dropout 0.2 -> Dense 300 elu -> Dropout -> Dense 100 elu
    -> Dropout -> Dense 10 softmax, with Keras's Dropout."""
    import keras

    layers = [keras.Input(shape=(784,)), keras.layers.Dropout(0.2)]
    for units in (300, 100):
        layers += [keras.layers.Dense(units, activation="elu", kernel_initializer="he_normal")]
        layers += [keras.layers.Dropout(0.2)]
    model = keras.Sequential([*layers, keras.layers.Dense(10, activation="softmax")])
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Nadam(), metrics=["accuracy"]
    )
    return model


def keras_fit(x, y, batch_size: int, epochs: int, model_name: str = "batch_norm") -> dict:
    """Plain `model.fit` with the backend's defaults (the parent sets KERAS_BACKEND)."""
    import keras

    keras.utils.set_random_seed(SEED)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    timer = Epochs()
    model = geron_model() if model_name == "batch_norm" else geron_dropout_model()
    timed = [keras_timer(timer)]
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=timed)
    return timer.to_dict()


def torch_fit(x, y, batch_size: int, epochs: int, model_name: str = "batch_norm") -> dict:
    """An idiomatic PyTorch loop: DataLoader with shuffling, NAdam, loss and accuracy each batch.
    One intra-op thread: with two on a loaded 2-core machine the loop collapsed (thread spinning)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    # Batch norm or dropout before each dense layer; softmax is inside the cross-entropy loss.
    before = (lambda n: nn.BatchNorm1d(n)) if model_name == "batch_norm" else (lambda n: nn.Dropout(0.2))
    model = nn.Sequential(
        nn.Flatten(),
        before(784),
        nn.Linear(784, 300),
        nn.ELU(),
        before(300),
        nn.Linear(300, 100),
        nn.ELU(),
        before(100),
        nn.Linear(100, 10),
    )
    for layer in (model[2], model[5]):
        nn.init.kaiming_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
    optimizer = torch.optim.NAdam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y).long())
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)
    timer = Epochs()
    model.train()
    for _ in range(epochs):
        timer.begin()
        correct = total = 0
        for xb, yb in loader:
            optimizer.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            correct += (logits.argmax(1) == yb).sum().item()
            total += len(yb)
        timer.end()
    return timer.to_dict()


def matmul_gflops(size: int = 1024, repeats: int = 10, rounds: int = 20) -> float:
    """TensorFlow's float32 matmul throughput here (default thread pools, best of `rounds`): the
    rate the floor assumes, higher than any small-batch training step reaches."""
    import tensorflow as tf

    a = tf.random.stateless_uniform([size, size], seed=[1, 2])
    b = tf.random.stateless_uniform([size, size], seed=[3, 4]) * (2 / size)  # keeps the chain bounded

    @tf.function
    def chain(a, b):
        for _ in range(repeats):  # each product feeds the next, so none can be merged or skipped
            a = tf.linalg.matmul(a, b)
        return a

    chain(a, b).numpy()  # trace
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        chain(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def minimal_step_seconds(widths: list[int], batch_size: int, rows: int, rounds: int = 3) -> float:
    """Seconds of an epoch of the least a training step of dense layers `widths` must do: per batch,
    the forward products, the weight and input gradients and a plain SGD update, without
    activations, normalization, loss or metrics, compiled by XLA into one loop (best of `rounds`).
    What TensorFlow reaches at the batch's matrix shapes, against the floor's large-matrix rate."""
    import tensorflow as tf

    steps = rows // batch_size
    x = tf.random.stateless_uniform([steps * batch_size, widths[0]], seed=[1, 2])
    shapes = list(zip(widths, widths[1:]))
    weights = [tf.random.stateless_uniform(shape, seed=[3, i]) / shape[0] for i, shape in enumerate(shapes)]

    @tf.function(jit_compile=True)
    def epoch(x, weights):
        def step(i, weights, total):
            h, inputs = tf.slice(x, [i * batch_size, 0], [batch_size, widths[0]]), []
            for w in weights:
                inputs.append(h)
                h = tf.linalg.matmul(h, w)
            gradient, updated = h, []
            for k in reversed(range(len(weights))):
                updated.insert(0, weights[k] - 1e-6 * tf.linalg.matmul(inputs[k], gradient, transpose_a=True))
                gradient = tf.linalg.matmul(gradient, weights[k], transpose_b=True)
            # The first layer's input gradient is used, as the input batch normalization's gradient needs it.
            return i + 1, updated, total + tf.reduce_sum(gradient)

        return tf.while_loop(lambda i, *_: i < steps, step, (0, weights, 0.0))[1]

    best = float("inf")
    for round_ in range(rounds + 1):  # the first call compiles
        start = time.perf_counter()
        [w.numpy() for w in epoch(x, weights)]
        if round_:
            best = min(best, time.perf_counter() - start)
    return best
