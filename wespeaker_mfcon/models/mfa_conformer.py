"""MFA-Conformer (Zhang et al., Interspeech 2022, arXiv 2203.15249).

    feats (B, T, 80)
      -> Conv2dSubsampling (rate 2)          (B, T', 256)
      -> RelPositionalEncoding
      -> 6 x ConformerBlock                  blocks: 6 x (B, T', 256)
      -> concat over channels                (B, T', 1536)     multi-scale feature aggregation
      -> LayerNorm                           (B, T', 1536)
      -> ASP                                 (B, 3072)
      -> BatchNorm1d -> Linear               (B, 192)          embedding

forward returns (embeds, blocks) so that the MFCon loss can use every block output.
Input features are expected mean-normalized already (done by the data pipeline / export wrapper).
forward(feats, lengths) takes a zero-padded batch of utterances of different lengths (B,) and
masks the padding through attention, conv modules and pooling (batched inference); each
embedding then equals that of the utterance alone, up to float rounding. lengths=None (training,
export) runs the unmasked path.
"""

import torch
import torch.nn as nn

from wespeaker_mfcon.models.conformer import (ConformerBlock, Conv2dSubsampling,
                                              RelPositionalEncoding)
from wespeaker_mfcon.models.pooling import build_pooling


class MFAConformer(nn.Module):

    def __init__(self, *, input_dim: int, num_blocks: int, output_size: int,
                 attention_heads: int, linear_units: int, cnn_module_kernel: int,
                 dropout_rate: float, positional_dropout_rate: float,
                 attention_dropout_rate: float, subsampling: int, embed_dim: int, pooling: str):
        # the paper's sizes are the defaults of config/schema.py MFAConformerArgs (build_model)
        super().__init__()
        self.embed_dim = embed_dim
        self.block_dims = [output_size] * num_blocks
        self.subsampling = Conv2dSubsampling(input_dim, output_size, subsampling)
        self.pos_enc = RelPositionalEncoding(output_size, positional_dropout_rate)
        self.blocks = nn.ModuleList([
            ConformerBlock(d_model=output_size, n_head=attention_heads, d_ff=linear_units,
                           kernel_size=cnn_module_kernel, dropout_rate=dropout_rate,
                           attention_dropout_rate=attention_dropout_rate)
            for _ in range(num_blocks)
        ])
        cat_dim = output_size * num_blocks
        self.norm = nn.LayerNorm(cat_dim)
        self.pool = build_pooling(pooling, cat_dim)
        self.bn = nn.BatchNorm1d(self.pool.out_dim)
        self.fc = nn.Linear(self.pool.out_dim, embed_dim)

    supports_lengths = True      # forward(feats, lengths) masks padding (inference.Embedder)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor = None) -> tuple:
        # feats: (B, T, F), lengths: (B,) real frames per utterance, or None (all T)
        x = self.subsampling(feats)                   # (B, T', d)
        mask = None
        if lengths is not None:                       # (B, T') True on real frames
            sub_lengths = self.subsampling.out_lengths(lengths)
            mask = torch.arange(x.size(1), device=x.device)[None, :] < sub_lengths[:, None]
        x, pos_emb = self.pos_enc(x)                  # (B, T', d), (1, 2T'-1, d)
        blocks = []
        for block in self.blocks:
            x = block(x, pos_emb, mask)               # (B, T', d)
            blocks.append(x)
        x = self.norm(torch.cat(blocks, dim=-1))      # (B, T', L*d)
        x = self.pool(x.transpose(1, 2), mask)        # (B, 2*L*d)
        embeds = self.fc(self.bn(x))                  # (B, E)
        return embeds, blocks
