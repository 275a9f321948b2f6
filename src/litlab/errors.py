"""Errors a run stops on with a message for the user (kept free of heavy imports, so the
command line can catch them before it has imported torch)."""


class ConfigError(ValueError):
    """A config a user can fix; the message lists every problem found."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


class Diverged(RuntimeError):
    """The training loss, or a weight about to be saved, stopped being a finite number."""

    def __init__(self, step: int, what: str, value: float, lr: float):
        super().__init__(
            f"training diverged at step {step}: {what} is {value}. Lower the learning rate "
            f"(optimizer.lr, {lr:g} at that step) or clip gradients (trainer.gradient_clip_val=1.0)"
        )


class Interrupted(RuntimeError):
    """A signal (Ctrl-C, SIGTERM) stopped training after a step that was saved."""

    def __init__(self, signal_name: str, exit_code: int, step: int, run_dir: str):
        self.exit_code = exit_code  # 128 + the signal's number, as shells report it
        super().__init__(
            f"{signal_name}: training stopped after step {step}, saved in "
            f'{run_dir}/checkpoints/last.ckpt. Continue it with: make train ARGS="resume={run_dir}"'
        )
