"""WeSpeaker-style margin schedule for margin-based projection heads.

Epochs are counted from 1 and iterations from 0, as in WeSpeaker:

    iter <  (increase_start_epoch - 1) * epoch_iter    margin = initial_margin
    iter in [increase start, fix start)                grows to final_margin
    iter >= (fix_start_epoch - 1) * epoch_iter         margin = final_margin

"exp" growth: ratio = 1 - 1e-3 ** progress (fast at first); "linear": ratio = progress.
step(iter) sets the margin from the iteration alone, so a resumed run gets the same margin.
update_margin=False (WeSpeaker's switch) keeps the initial margin throughout.
"""

import math


class MarginScheduler:

    def __init__(self, projection, initial_margin: float = 0.0, final_margin: float = 0.2,
                 increase_start_epoch: int = 20, fix_start_epoch: int = 40,
                 increase_type: str = "exp", epoch_iter: int = 1, update_margin: bool = True):
        if increase_type not in ("exp", "linear"):
            raise ValueError(f"increase_type must be 'exp' or 'linear', got {increase_type!r}")
        if fix_start_epoch < increase_start_epoch:
            raise ValueError("fix_start_epoch must not precede increase_start_epoch")
        if epoch_iter < 1:
            raise ValueError(f"epoch_iter must be positive, got {epoch_iter}")
        self.projection = projection
        self.initial_margin = initial_margin
        self.final_margin = final_margin
        self.increase_type = increase_type
        self.update_margin = update_margin
        self.increase_start_iter = (increase_start_epoch - 1) * epoch_iter
        self.fix_start_iter = (fix_start_epoch - 1) * epoch_iter
        self.projection.update(initial_margin)

    def margin_at(self, current_iter: int) -> float:
        if not self.update_margin:
            return self.initial_margin
        if current_iter >= self.fix_start_iter:
            return self.final_margin
        if current_iter < self.increase_start_iter:
            return self.initial_margin
        progress = (current_iter - self.increase_start_iter) / (
            self.fix_start_iter - self.increase_start_iter)
        if self.increase_type == "exp":
            ratio = 1.0 - math.exp(progress * math.log(1e-3))
        else:
            ratio = progress
        return self.initial_margin + (self.final_margin - self.initial_margin) * ratio

    def step(self, current_iter: int) -> float:
        margin = self.margin_at(current_iter)
        self.projection.update(margin)
        return margin

    def get_margin(self) -> float:
        return float(getattr(self.projection, "margin", 0.0))
