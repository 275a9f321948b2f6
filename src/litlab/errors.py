"""Errors a run stops on with a message for the user (kept free of heavy imports, so the
command line can catch them before it has imported torch)."""


class Diverged(RuntimeError):
    """The training loss stopped being a finite number."""

    def __init__(self, step: int, value: float, lr: float):
        super().__init__(
            f"training diverged at step {step}: the loss is {value}. Lower the learning rate "
            f"(optimizer.lr, {lr:g} at that step) or clip gradients (trainer.gradient_clip_val=1.0)"
        )
