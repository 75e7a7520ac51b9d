"""ECAPA-TDNN (Desplanques et al., Interspeech 2020), SpeechBrain layout.

    feats (B, T, 80) -> (B, 80, T)
      -> Conv1d(k=5) + ReLU + BN                       (B, C, T)
      -> SE-Res2Block(k=3, dilation 2)                 (B, C, T)   block 1
      -> SE-Res2Block(k=3, dilation 3)                 (B, C, T)   block 2
      -> SE-Res2Block(k=3, dilation 4)                 (B, C, T)   block 3
      -> concat + Conv1d(1x1) + ReLU + BN  (MFA)       (B, 1536, T)
      -> ASP                                           (B, 3072)
      -> BatchNorm1d -> Linear                         (B, 192)

SE-Res2Block: 1x1 conv -> Res2 dilated conv (scale 8) -> 1x1 conv -> squeeze-excitation,
plus the identity shortcut; every conv is followed by ReLU and BatchNorm.
forward returns (embeds, blocks) with blocks the three SE-Res2Block outputs as (B, T, C).
"""

import torch
import torch.nn as nn

from wespeaker_mfcon.models.pooling import build_pooling


class ConvReluBn(nn.Sequential):
    """Conv1d -> ReLU -> BatchNorm1d, 'same' padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv1d(in_ch, out_ch, kernel_size, dilation=dilation,
                      padding=dilation * (kernel_size - 1) // 2),
            nn.ReLU(),
            nn.BatchNorm1d(out_ch),
        )


class Res2Conv(nn.Module):
    """Res2Net split: chunk 0 passes through, chunk i gets conv(x_i + y_{i-1})."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by Res2 scale {scale}")
        self.scale = scale
        width = channels // scale
        self.convs = nn.ModuleList([ConvReluBn(width, width, kernel_size, dilation)
                                    for _ in range(scale - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T) -> scale x (B, C/scale, T)
        chunks = torch.chunk(x, self.scale, dim=1)
        ys = [chunks[0]]
        y = self.convs[0](chunks[1])
        ys.append(y)
        for conv, x_i in zip(self.convs[1:], chunks[2:]):
            y = conv(x_i + y)
            ys.append(y)
        return torch.cat(ys, dim=1)                       # (B, C, T)


class SqueezeExcite(nn.Module):
    """Channel gates from the time average: sigmoid(W2 ReLU(W1 mean_t(x)))."""

    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.fc1 = nn.Conv1d(channels, bottleneck, 1)
        self.fc2 = nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T)
        s = x.mean(dim=2, keepdim=True)                   # (B, C, 1)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s


class SERes2Block(nn.Module):

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8,
                 se_channels: int = 128):
        super().__init__()
        self.conv1 = ConvReluBn(channels, channels, 1)
        self.res2 = Res2Conv(channels, kernel_size, dilation, scale)
        self.conv2 = ConvReluBn(channels, channels, 1)
        self.se = SqueezeExcite(channels, se_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T)
        out = self.conv2(self.res2(self.conv1(x)))
        return self.se(out) + x                           # (B, C, T)


class ECAPATDNN(nn.Module):

    def __init__(self, *, input_dim: int, channels: int, embed_dim: int, scale: int,
                 dilations: list, kernel_size: int, mfa_channels: int, se_channels: int,
                 pooling: str):
        # defaults (C=512): config/schema.py ECAPATDNNArgs, through build_model
        super().__init__()
        self.embed_dim = embed_dim
        self.block_dims = [channels] * len(dilations)
        self.layer1 = ConvReluBn(input_dim, channels, kernel_size=5)
        self.blocks = nn.ModuleList([
            SERes2Block(channels, kernel_size, d, scale, se_channels) for d in dilations
        ])
        self.mfa = ConvReluBn(channels * len(dilations), mfa_channels, 1)
        self.pool = build_pooling(pooling, mfa_channels)
        self.bn = nn.BatchNorm1d(self.pool.out_dim)
        self.fc = nn.Linear(self.pool.out_dim, embed_dim)

    def forward(self, feats: torch.Tensor) -> tuple:
        # feats: (B, T, F)
        x = self.layer1(feats.transpose(1, 2))            # (B, C, T)
        outs = []
        for block in self.blocks:
            x = block(x)                                  # (B, C, T)
            outs.append(x)
        x = self.mfa(torch.cat(outs, dim=1))              # (B, 3C, T) -> (B, mfa, T)
        x = self.pool(x)                                  # (B, 2*mfa)
        embeds = self.fc(self.bn(x))                      # (B, E)
        blocks = [o.transpose(1, 2) for o in outs]        # 3 x (B, T, C)
        return embeds, blocks
