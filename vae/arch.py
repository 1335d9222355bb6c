"""V: the convolutional variational autoencoder of the paper (appendix A.1), in Keras 3.

Encoder: 64x64x3 -> conv 32, 64, 128, 256 (kernel 4, stride 2, relu, valid) -> 2x2x256 -> flatten 1024 ->
mu, logvar (z_size each). Decoder: z -> dense 1024 -> 1x1x1024 -> deconv 128 (k5), 64 (k5), 32 (k6) relu, 3 (k6)
sigmoid, all stride 2 -> 64x64x3. Parameter count: 4,348,547 for z = 32 and 4,446,915 for z = 64, as in the paper's
code (the 2018 Keras port halved the encoder widths; we do not).

Loss per example: sum of squared error over the 64*64*3 pixels + max(KL(q(z|x) || N(0, I)) summed over z,
kl_tolerance * z_size); both averaged over the batch.
"""

from __future__ import annotations

import numpy as np

from keras_setup import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

ENCODER_FILTERS = (32, 64, 128, 256)
ENCODER_KERNEL = 4
DECODER_FILTERS = (128, 64, 32)
DECODER_KERNELS = (5, 5, 6, 6)  # the last kernel belongs to the 3-channel output layer
DECODER_DENSE = 1024


def build_encoder(z_size: int) -> keras.Model:
    """(B, 64, 64, 3) float in [0, 1] -> mu (B, z), logvar (B, z)."""
    frames = keras.Input((64, 64, 3), name="frames")
    x = frames
    for index, filters in enumerate(ENCODER_FILTERS):
        x = layers.Conv2D(filters, ENCODER_KERNEL, strides=2, activation="relu", name=f"enc_conv{index}")(x)
    x = layers.Flatten(name="enc_flatten")(x)
    mu = layers.Dense(z_size, name="enc_mu")(x)
    logvar = layers.Dense(z_size, name="enc_logvar")(x)
    return keras.Model(frames, [mu, logvar], name="encoder")


def build_decoder(z_size: int) -> keras.Model:
    """(B, z) -> (B, 64, 64, 3) in [0, 1]."""
    z = keras.Input((z_size,), name="z")
    x = layers.Dense(DECODER_DENSE, name="dec_dense")(z)
    x = layers.Reshape((1, 1, DECODER_DENSE), name="dec_reshape")(x)
    for index, (filters, kernel) in enumerate(zip(DECODER_FILTERS, DECODER_KERNELS)):
        x = layers.Conv2DTranspose(filters, kernel, strides=2, activation="relu", name=f"dec_deconv{index}")(x)
    x = layers.Conv2DTranspose(3, DECODER_KERNELS[-1], strides=2, activation="sigmoid",
                               name=f"dec_deconv{len(DECODER_FILTERS)}")(x)
    return keras.Model(z, x, name="decoder")


def kl_divergence(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the latent axis: (B, z) -> (B,). Zero at mu=0, logvar=0."""
    return -0.5 * ops.sum(1.0 + logvar - ops.square(mu) - ops.exp(logvar), axis=-1)


def reconstruction_error(frames, reconstruction):
    """Sum of squared errors over every pixel and channel: (B, 64, 64, 3) x2 -> (B,)."""
    return ops.sum(ops.square(frames - reconstruction), axis=(1, 2, 3))


def to_unit_float(frames_uint8):
    """uint8 frames -> float32 in [0, 1], done per minibatch so no float copy of a data file ever exists."""
    return ops.cast(frames_uint8, "float32") / 255.0


class ConvVAE(keras.Model):
    """The VAE; `fit()` takes uint8 frames (B, 64, 64, 3) and reports loss, reconstruction_loss and kl_loss."""

    def __init__(self, z_size: int = 32, kl_tolerance: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.z_size = z_size
        self.kl_tolerance = kl_tolerance
        self.encoder = build_encoder(z_size)
        self.decoder = build_decoder(z_size)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def encode(self, frames_uint8):
        """uint8 (B, 64, 64, 3) -> (mu, logvar), each (B, z)."""
        return self.encoder(to_unit_float(frames_uint8))

    def sample_z(self, mu, logvar):
        """The reparameterisation z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)."""
        epsilon = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
        return mu + ops.exp(0.5 * logvar) * epsilon

    def call(self, frames_uint8, training=False):
        mu, logvar = self.encode(frames_uint8)
        return self.decoder(self.sample_z(mu, logvar))

    def losses_of(self, frames_uint8):
        """(total, reconstruction, kl) losses of one minibatch, each a scalar averaged over the batch."""
        frames = to_unit_float(frames_uint8)
        mu, logvar = self.encoder(frames)
        reconstruction = self.decoder(self.sample_z(mu, logvar))
        reconstruction_loss = ops.mean(reconstruction_error(frames, reconstruction))
        kl_floor = self.kl_tolerance * self.z_size
        kl_loss = ops.mean(ops.maximum(kl_divergence(mu, logvar), kl_floor))
        return reconstruction_loss + kl_loss, reconstruction_loss, kl_loss

    def train_step(self, data):
        import tensorflow as tf

        frames_uint8 = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss, reconstruction_loss, kl_loss = self.losses_of(frames_uint8)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction_loss)
        self.kl_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}

    def build_all(self) -> "ConvVAE":
        """Create every weight (by one forward pass on a blank frame) so weights can be counted, saved, loaded."""
        self(np.zeros((1, 64, 64, 3), dtype=np.uint8))
        return self

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """Every weight as float32 NumPy, keyed '<layer>/kernel' or '<layer>/bias' (Keras layouts: conv kernels
        (kh, kw, in, out), transposed-conv kernels (kh, kw, out, in), dense kernels (in, out))."""
        weights = {}
        for model in (self.encoder, self.decoder):
            for layer in model.layers:
                for variable in layer.weights:
                    weights[f"{layer.name}/{variable.name}"] = np.asarray(variable.numpy(), dtype=np.float32)
        return weights


def make_vae(config, seed: int | None = None, learning_rate: float | None = None) -> ConvVAE:
    """The VAE for an EnvConfig, built and compiled with Adam (paper: 1e-4).

    The optimizer's slots are created up front, so `save_weights` stores Adam's moments and `load_weights` restores
    them: a resumed run continues the same optimisation instead of restarting Adam.
    """
    vae = ConvVAE(z_size=config.z_size, kl_tolerance=config.kl_tolerance, seed=seed).build_all()
    # XLA or not: which step is faster depends on the CPU (3.2x faster on one, 2.4x slower on another: make bench),
    # so 02 measures both (vae.train.choose_jit); their losses agree to float32 rounding (tests/test_models.py).
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate or config.vae_learning_rate),
                jit_compile=True)
    vae.optimizer.build(vae.trainable_variables)
    return vae
