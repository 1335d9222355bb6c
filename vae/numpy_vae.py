"""V in NumPy: the ConvVAE's encoder and decoder computed from the weights in ./vae/<env>.npz, no TensorFlow.

Rollout workers and model.py use this; tests/test_agent.py checks it against the Keras model (vae/arch.py) to 1e-4.
The architecture numbers mirror vae/arch.py (which imports Keras, so they are repeated here, not imported):

    encoder  (B, 64, 64, 3) in [0, 1] -> conv 32, 64, 128, 256 (kernel 4, stride 2, relu, valid)
             -> (B, 2, 2, 256) -> flatten 1024 -> mu (B, z), logvar (B, z)
    decoder  (B, z) -> dense 1024 -> (B, 1, 1, 1024) -> deconv 128 (k5), 64 (k5), 32 (k6) relu, 3 (k6) sigmoid,
             all stride 2 -> (B, 64, 64, 3)

A convolution is one matrix product: the stride trick views the input as (B, out_h, out_w, k, k, in) patches
without copying, one copy puts them into rows (im2col), and the rows meet the Keras kernel (k, k, in, out)
reshaped to (k*k*in, out). A transposed convolution is the same product the other way round: every input pixel
times the kernel gives a (k, k, out) block, and the blocks are added into the output at stride 2. Everything is
float32 and one BLAS thread is enough (the matrices are small).
"""

from __future__ import annotations

import os

import numpy as np

from cli import UserError
from npyio import require_finite

ENCODER_FILTERS = (32, 64, 128, 256)  # as vae/arch.py
ENCODER_KERNEL = 4
DECODER_FILTERS = (128, 64, 32, 3)  # the last is the sigmoid output layer
DECODER_KERNELS = (5, 5, 6, 6)
DECODER_DENSE = 1024
STRIDE = 2


def expected_vae_shapes(z_size: int) -> dict[str, tuple[int, ...]]:
    """The weight keys of ConvVAE.numpy_weights() and their shapes (Keras layouts) for latent size `z_size`."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels = 3
    for index, filters in enumerate(ENCODER_FILTERS):
        shapes[f"enc_conv{index}/kernel"] = (ENCODER_KERNEL, ENCODER_KERNEL, channels, filters)
        shapes[f"enc_conv{index}/bias"] = (filters,)
        channels = filters
    flat = 2 * 2 * ENCODER_FILTERS[-1]
    for head in ("enc_mu", "enc_logvar"):
        shapes[f"{head}/kernel"] = (flat, z_size)
        shapes[f"{head}/bias"] = (z_size,)
    shapes["dec_dense/kernel"] = (z_size, DECODER_DENSE)
    shapes["dec_dense/bias"] = (DECODER_DENSE,)
    channels = DECODER_DENSE
    for index, (filters, kernel) in enumerate(zip(DECODER_FILTERS, DECODER_KERNELS)):
        shapes[f"dec_deconv{index}/kernel"] = (kernel, kernel, filters, channels)  # transposed: (k, k, out, in)
        shapes[f"dec_deconv{index}/bias"] = (filters,)
        channels = filters
    return shapes


def load_npz_weights(path: str, expected: dict[str, tuple[int, ...]], made_by: str) -> dict[str, np.ndarray]:
    """Read an .npz of float32 weights and check every expected key and shape; a UserError names `made_by`."""
    from reading import WEIGHTS_BYTES, NpzArchive

    if not os.path.lexists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    weights = {}
    with NpzArchive(path, WEIGHTS_BYTES, f"delete it and run again: {made_by}") as archive:
        for key in archive.names:
            array = archive.array(key)
            if array.dtype.kind not in "biuf":
                raise UserError(f"{path}: {key} holds {array.dtype} values, not numbers; remake it with: {made_by}")
            weights[key] = np.asarray(array, dtype=np.float32)
    for key, shape in expected.items():
        if key not in weights:
            raise UserError(f"{path} has no weight {key!r} (it has {', '.join(sorted(weights)) or 'nothing'}); "
                            f"remake it with: {made_by}")
        if weights[key].shape != shape:
            raise UserError(f"{path}: {key} has shape {weights[key].shape}, expected {shape} for this environment; "
                            f"remake it with: {made_by}")
        # NaN or inf (also a float64 value beyond float32's range, made inf above) poisons every rollout: CarRacing
        # episodes would end after 2-3 steps with a score 05 took for a new best
        require_finite(weights[key], path, made_by, what=key)
    return weights


class Conv2DRelu:
    """Valid stride-2 convolution + relu for a fixed input shape (B, H, W, C), with its buffers made once.

    The stride trick views the input as (B, H', W', k, k, C) patches (no copy); np.copyto writes them into the
    rows of a float32 matrix (im2col: the one copy, converting uint8 on the way for the first layer); one matrix
    product with the Keras kernel (k, k, C, F) reshaped to (k*k*C, F) gives the output. The bias and the zeros of
    the relu are kept at full size: NumPy adds and compares same-shape arrays several times faster than it
    broadcasts a vector or a scalar over them. Returns a view of an internal buffer, overwritten by the next call.
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, input_shape: tuple[int, int, int, int]):
        batch, height, width, channels = input_shape
        size, filters = kernel.shape[0], kernel.shape[-1]
        self.input_shape = input_shape
        self.out_h, self.out_w = (height - size) // STRIDE + 1, (width - size) // STRIDE + 1
        self.patch_shape = (batch, self.out_h, self.out_w, size, size, channels)
        rows = batch * self.out_h * self.out_w
        self.kernel_matrix = np.ascontiguousarray(kernel.reshape(-1, filters), dtype=np.float32)
        self.rows = np.empty((rows, size * size * channels), dtype=np.float32)
        self.rows_as_patches = self.rows.reshape(self.patch_shape)
        self.out = np.empty((rows, filters), dtype=np.float32)
        self.full_bias = np.ascontiguousarray(np.broadcast_to(bias, self.out.shape), dtype=np.float32)
        self.zeros = np.zeros_like(self.out)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: C-contiguous (B, H, W, C), float32 (or uint8) -> (B, H', W', F) float32."""
        sb, sh, sw, sc = x.strides
        patches = np.ndarray(self.patch_shape, x.dtype, x, 0, (sb, sh * STRIDE, sw * STRIDE, sh, sw, sc))
        np.copyto(self.rows_as_patches, patches)
        np.matmul(self.rows, self.kernel_matrix, out=self.out)
        np.add(self.out, self.full_bias, out=self.out)
        np.maximum(self.out, self.zeros, out=self.out)
        return self.out.reshape(self.input_shape[0], self.out_h, self.out_w, -1)


def conv2d_transpose(x: np.ndarray, kernel_matrix: np.ndarray, bias: np.ndarray, kernel: int,
                     filters: int) -> np.ndarray:
    """Valid stride-2 transposed convolution (no activation): x (B, H, W, C), kernel_matrix (C, k*k*F)
    -> (B, (H-1)*2+k, (W-1)*2+k, F). Output pixel (2i+u, 2j+v) receives x[i, j] . kernel[u, v] for every i, j."""
    batch, height, width, channels = x.shape
    blocks = (x.reshape(-1, channels) @ kernel_matrix).reshape(batch, height, width, kernel, kernel, filters)
    out_h, out_w = (height - 1) * STRIDE + kernel, (width - 1) * STRIDE + kernel
    out = np.empty((batch, out_h, out_w, filters), dtype=np.float32)
    out[:] = bias
    for u in range(kernel):
        for v in range(kernel):
            out[:, u:u + STRIDE * height:STRIDE, v:v + STRIDE * width:STRIDE] += blocks[:, :, :, u, v]
    return out


class NumpyVAE:
    """The encoder and decoder of ConvVAE from its numpy_weights() dictionary.

    `encode` takes uint8 frames (B, 64, 64, 3) (or one frame (64, 64, 3)) and returns mu, logvar (B, z);
    `decode` takes z (B, z) and returns frames in [0, 1] (B, 64, 64, 3), float32.
    """

    def __init__(self, weights: dict[str, np.ndarray], z_size: int):
        self.z_size = z_size
        # uint8 frames go straight into the first convolution: the 1/255 of the [0, 1] scaling is in its kernel.
        self.encoder_weights = [(weights[f"enc_conv{index}/kernel"] * np.float32(1.0 / 255.0 if index == 0 else 1.0),
                                 weights[f"enc_conv{index}/bias"]) for index in range(len(ENCODER_FILTERS))]
        self.encoder_plans: dict[int, list[Conv2DRelu]] = {}  # batch size -> its convolutions with buffers
        # mu and logvar heads as one product: (1024, 2z)
        self.head_kernel = np.ascontiguousarray(np.concatenate([weights["enc_mu/kernel"],
                                                                weights["enc_logvar/kernel"]], axis=1))
        self.head_bias = np.concatenate([weights["enc_mu/bias"], weights["enc_logvar/bias"]])
        self.dense_kernel, self.dense_bias = weights["dec_dense/kernel"], weights["dec_dense/bias"]
        self.decoder_layers = []
        for index, filters in enumerate(DECODER_FILTERS):
            kernel = weights[f"dec_deconv{index}/kernel"]  # (k, k, out, in) -> (in, k*k*out)
            size = kernel.shape[0]
            matrix = np.ascontiguousarray(kernel.transpose(3, 0, 1, 2).reshape(kernel.shape[3], -1))
            self.decoder_layers.append((matrix, weights[f"dec_deconv{index}/bias"], size, filters))

    def __getstate__(self) -> dict:
        """Without the encoder plans: their buffers are views of one another, which a pickled copy would hold as
        separate arrays (and encode wrongly); a copy makes its own on first use."""
        return {**self.__dict__, "encoder_plans": {}}

    @classmethod
    def load(cls, path: str, z_size: int, made_by: str) -> "NumpyVAE":
        """Read ./vae/<env>.npz; a missing, corrupt or mismatched file is a UserError naming `made_by`."""
        return cls(load_npz_weights(path, expected_vae_shapes(z_size), made_by), z_size)

    def encode(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 frames (B, 64, 64, 3) or (64, 64, 3) -> mu (B, z), logvar (B, z), float32."""
        x = np.ascontiguousarray(frames.reshape((-1,) + frames.shape[-3:]), dtype=np.uint8)
        for convolution in self.encoder_plan(x.shape[0]):
            x = convolution(x)
        heads = x.reshape(x.shape[0], -1) @ self.head_kernel  # a new array: safe to return
        heads += self.head_bias
        return heads[:, : self.z_size], heads[:, self.z_size:]

    def encoder_plan(self, batch: int) -> list[Conv2DRelu]:
        """The four convolutions for inputs of `batch` frames (made on first use, then reused)."""
        if batch not in self.encoder_plans:
            shape, plan = (batch, 64, 64, 3), []
            for kernel, bias in self.encoder_weights:
                plan.append(Conv2DRelu(kernel, bias, shape))
                shape = (batch, plan[-1].out_h, plan[-1].out_w, kernel.shape[-1])
            if len(self.encoder_plans) > 4:  # odd batch sizes (a last short batch) should not pile up
                self.encoder_plans.clear()
            self.encoder_plans[batch] = plan
        return self.encoder_plans[batch]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """z (B, z) or (z,) -> reconstructed frames (B, 64, 64, 3) in [0, 1], float32."""
        x = np.asarray(z, dtype=np.float32).reshape(-1, self.z_size) @ self.dense_kernel + self.dense_bias
        x = x.reshape(-1, 1, 1, DECODER_DENSE)
        last = len(self.decoder_layers) - 1
        for index, (matrix, bias, kernel, filters) in enumerate(self.decoder_layers):
            x = conv2d_transpose(x, matrix, bias, kernel, filters)
            if index < last:
                np.maximum(x, 0.0, out=x)
        return 0.5 * np.tanh(0.5 * x) + 0.5  # the sigmoid, without overflow for large |x|
