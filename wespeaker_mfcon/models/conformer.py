"""Conformer encoder pieces (Gulati et al. 2020), WeNet/ESPnet flavour, for speaker models.

    feats (B, T, F)
      -> Conv2dSubsampling          (B, T', d)      T' = (T-1)//2 at rate 2, ((T-1)//2-1)//2 at 4
      -> RelPositionalEncoding      x * sqrt(d), pos_emb (1, 2T'-1, d)
      -> ConformerBlock x L         (B, T', d) each:
             x = x + 1/2 FFN(LN(x))                      macaron half step
             x = x + RelPosMHSA(LN(x), pos_emb)
             x = x + ConvModule(LN(x))
             x = x + 1/2 FFN(LN(x))
             x = LN(x)

Training uses no masks: every utterance in a batch has the same number of frames (fixed
crops). Batched inference over utterances of different lengths passes `mask` (B, T') bool, True
on real frames: attention ignores padded keys and the conv module zeroes padded frames before
its depthwise conv, so a padded utterance's real frames see exactly what they see alone (the
conv's own zero padding). mask=None is the unmasked path, unchanged. Shapes are never tested in
Python, so the blocks trace with a symbolic T for torch.export / ONNX.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv2dSubsampling(nn.Module):
    """Conv2d front end: rate 2 = one 3x3/2 conv (MFA-Conformer), rate 4 = two (WeNet conv2d)."""

    def __init__(self, input_dim: int, d_model: int, rate: int = 2):
        super().__init__()
        if rate not in (2, 4):
            raise ValueError(f"subsampling rate must be 2 or 4, got {rate}")
        layers = [nn.Conv2d(1, d_model, 3, stride=2), nn.ReLU()]
        freq = (input_dim - 1) // 2
        if rate == 4:
            layers += [nn.Conv2d(d_model, d_model, 3, stride=2), nn.ReLU()]
            freq = (freq - 1) // 2
        self.rate = rate
        self.conv = nn.Sequential(*layers)
        self.out = nn.Linear(d_model * freq, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, F)
        x = self.conv(x.unsqueeze(1))             # (B, d, T', F')
        x = x.transpose(1, 2).flatten(2)          # (B, T', d*F')
        return self.out(x)                        # (B, T', d)

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames out for `lengths` (B,) frames in: each 3x3/2 conv (no padding) maps T to
        (T-1)//2, and output frame t only reads input frames 2t..2t+2, so the first
        out_lengths(L) outputs of a padded utterance depend on its real frames alone."""
        for _ in range(self.rate // 2):
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor")
        return lengths


def rel_sinusoids(length: int, d_model: int, device, dtype) -> torch.Tensor:
    """Sinusoids for relative positions length-1, ..., 0, ..., -(length-1): (1, 2*length-1, d)."""
    pos = (length - 1) - torch.arange(2 * length - 1, device=device, dtype=torch.float32)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32)
                         * (-math.log(10000.0) / d_model))                 # (d/2,)
    angle = pos[:, None] * inv_freq[None, :]                              # (2T-1, d/2)
    pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)       # (2T-1, d) sin,cos,...
    return pe.unsqueeze(0).to(dtype)


class RelPositionalEncoding(nn.Module):
    """Scales x by sqrt(d) and returns relative-position sinusoids computed for the actual T."""

    def __init__(self, d_model: int, dropout_rate: float = 0.1):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> tuple:
        # x: (B, T, d)
        pos_emb = rel_sinusoids(x.size(1), self.d_model, x.device, x.dtype)  # (1, 2T-1, d)
        return self.dropout(x * self.xscale), self.dropout(pos_emb)


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, 2T-1) scores against positions T-1..-(T-1) -> (B, H, T, T) indexed by i-j."""
    t = x.size(2)
    i = torch.arange(t, device=x.device)
    idx = (t - 1) - i[:, None] + i[None, :]                # (T, T): column of distance i-j
    return x.gather(3, idx.expand_as(x[..., :t]))         # (B, H, T, T)


class RelPositionMultiHeadedAttention(nn.Module):
    """Transformer-XL self-attention: content term (q+u)k^T plus position term (q+v)p^T."""

    def __init__(self, n_head: int, d_model: int, dropout_rate: float = 0.1):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model {d_model} not divisible by {n_head} heads")
        self.h = n_head
        self.d_k = d_model // n_head
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(n_head, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(n_head, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = nn.Dropout(dropout_rate)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, d) -> (B, H, T, d_k)
        return x.unflatten(2, (self.h, self.d_k)).transpose(1, 2)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor,
                mask: torch.Tensor = None) -> torch.Tensor:
        # x: (B, T, d), pos_emb: (1, 2T-1, d), mask: (B, T) bool, True = real frame, or None
        q = self.split_heads(self.linear_q(x))                  # (B, H, T, d_k)
        k = self.split_heads(self.linear_k(x))                  # (B, H, T, d_k)
        v = self.split_heads(self.linear_v(x))                  # (B, H, T, d_k)
        p = self.split_heads(self.linear_pos(pos_emb))          # (1, H, 2T-1, d_k)
        q_u = q + self.pos_bias_u[:, None, :]                   # (B, H, T, d_k)
        q_v = q + self.pos_bias_v[:, None, :]
        content = q_u @ k.transpose(-2, -1)                     # (B, H, T, T)
        position = rel_shift(q_v @ p.transpose(-2, -1))         # (B, H, T, T)
        scores = (content + position) / math.sqrt(self.d_k)
        if mask is not None:                                    # padded keys get weight 0
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = self.dropout(torch.softmax(scores, dim=-1))      # (B, H, T, T)
        out = (attn @ v).transpose(1, 2).flatten(2)             # (B, T, d)
        return self.linear_out(out)


class FeedForward(nn.Module):
    """Linear -> Swish -> Dropout -> Linear."""

    def __init__(self, d_model: int, d_ff: int, dropout_rate: float = 0.1):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, d) -> (B, T, d_ff) -> (B, T, d)
        return self.w_2(self.dropout(F.silu(self.w_1(x))))


class ConvolutionModule(nn.Module):
    """Pointwise conv + GLU -> depthwise conv -> BatchNorm -> Swish -> pointwise conv."""

    def __init__(self, d_model: int, kernel_size: int = 15):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"cnn_module_kernel must be odd, got {kernel_size}")
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise_conv = nn.Conv1d(d_model, d_model, kernel_size,
                                        padding=(kernel_size - 1) // 2, groups=d_model)
        self.norm = nn.BatchNorm1d(d_model)
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
        # x: (B, T, d), mask: (B, T) bool, True = real frame, or None
        x = x.transpose(1, 2)                                  # (B, d, T)
        x = F.glu(self.pointwise_conv1(x), dim=1)              # (B, 2d, T) -> (B, d, T)
        if mask is not None:                                   # padding = the conv's zeros
            x = x.masked_fill(~mask[:, None, :], 0.0)
        x = F.silu(self.norm(self.depthwise_conv(x)))          # (B, d, T)
        x = self.pointwise_conv2(x)                            # (B, d, T)
        return x.transpose(1, 2)                               # (B, T, d)


class ConformerBlock(nn.Module):
    """Pre-LN macaron Conformer block with a final LayerNorm."""

    def __init__(self, d_model: int = 256, n_head: int = 4, d_ff: int = 2048,
                 kernel_size: int = 15, dropout_rate: float = 0.1,
                 attention_dropout_rate: float = 0.1):
        super().__init__()
        self.norm_ff_macaron = nn.LayerNorm(d_model)
        self.ff_macaron = FeedForward(d_model, d_ff, dropout_rate)
        self.norm_mha = nn.LayerNorm(d_model)
        self.self_attn = RelPositionMultiHeadedAttention(n_head, d_model, attention_dropout_rate)
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv_module = ConvolutionModule(d_model, kernel_size)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, d_ff, dropout_rate)
        self.norm_final = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor,
                mask: torch.Tensor = None) -> torch.Tensor:
        # x: (B, T, d), pos_emb: (1, 2T-1, d), mask: (B, T) bool or None (see module doc)
        x = x + 0.5 * self.dropout(self.ff_macaron(self.norm_ff_macaron(x)))
        x = x + self.dropout(self.self_attn(self.norm_mha(x), pos_emb, mask))
        x = x + self.dropout(self.conv_module(self.norm_conv(x), mask))
        x = x + 0.5 * self.dropout(self.ff(self.norm_ff(x)))
        return self.norm_final(x)                              # (B, T, d)
