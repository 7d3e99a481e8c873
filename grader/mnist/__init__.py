"""The MNIST check's trusted side and its transfer: MLP3 trained here, on gradients from the
student's ops computed in the sandbox.

    loop.py       the training loop (train) and the verification of its steps (StepCheck)
    model.py      MLP3 as this side computes it: the course's parameters, numpy's math
    transport.py  the steps' transfer, both its ends (the worker's is shipped into the sandbox),
                  and the one rule of what SGD applies (accepted_update)

Nothing is imported here: the sandbox's launcher needs transport.py alone.
"""
