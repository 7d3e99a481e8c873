"""Plain minibatch stochastic gradient descent. Given."""


class SGD:
    """p ← p − lr · p.grad for every parameter, updated in place."""

    def __init__(self, parameters, lr):
        self.parameters = list(parameters)
        self.lr = lr

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None

    def step(self):
        for p in self.parameters:
            if p.grad is not None:
                p.data -= self.lr * p.grad
