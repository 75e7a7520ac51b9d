"""Training losses: MFCon (multi-scale SupCon) and the margin scheduler."""

from wespeaker_mfcon.losses.margin_scheduler import MarginScheduler
from wespeaker_mfcon.losses.mfcon import BlockHead, MFConLoss, supcon_loss

__all__ = ["BlockHead", "MFConLoss", "MarginScheduler", "supcon_loss"]
