"""Layers and the MLP3 model, built from the operations in ops.py and activations.py. Given."""
import numpy as np

from .activations import ReLU, Softmax
from .ops import Add, Matmul
from .tensor import Tensor


class Linear:
    """y = x W + b, with W (in_features, out_features) and b (out_features,).

    W is drawn from N(0, init_std²); the default, He initialisation, uses sqrt(2 / in_features),
    which suits a ReLU after the layer. b starts at zero.
    """

    def __init__(self, in_features, out_features, rng, init_std=None):
        std = np.sqrt(2.0 / in_features) if init_std is None else init_std
        self.weight = Tensor(rng.normal(0.0, std, (in_features, out_features)).astype(np.float32), requires_grad=True)
        self.bias = Tensor(np.zeros(out_features, dtype=np.float32), requires_grad=True)

    def __call__(self, x):
        return Add.apply(Matmul.apply(x, self.weight), self.bias)

    def weights(self):
        """The tensors L2 regularizes: the weight matrix, not the bias."""
        return [self.weight]

    def parameters(self):
        return [self.weight, self.bias]


class MLP3:
    """Linear → ReLU → Linear → ReLU → Linear → Softmax: class probabilities for each row of x."""

    def __init__(self, in_features=784, hidden=(256, 128), classes=10, seed=0, init_std=None):
        rng = np.random.default_rng(seed)
        sizes = [in_features, *hidden, classes]
        self.layers = [Linear(n_in, n_out, rng, init_std) for n_in, n_out in zip(sizes, sizes[1:])]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = ReLU.apply(layer(x))
        return Softmax.apply(self.layers[-1](x), axis=-1)

    def weights(self):
        return [w for layer in self.layers for w in layer.weights()]

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]
