"""MACs of standard layers equal hand-computed values (exact), and agree with thop / fvcore where they count."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import slimkit


def out_len(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# (in_ch, out_ch, kernel, stride, padding, dilation, groups, bias)
CONV2D = [
    (3, 8, 3, 1, 1, 1, 1, True),
    (4, 8, 3, 2, 0, 1, 2, False),
    (6, 6, 3, 1, 2, 2, 6, True),  # depthwise, dilated
    (8, 12, 5, 3, 1, 1, 4, True),
    (3, 5, 1, 1, 0, 1, 1, False),
]


@pytest.mark.parametrize("cin, cout, k, s, p, d, g, bias", CONV2D)
def test_conv2d_macs(cin, cout, k, s, p, d, g, bias):
    n, h, w = 2, 11, 9
    layer = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    report = slimkit.profile(layer, torch.randn(n, cin, h, w))
    ho, wo = out_len(h, k, s, p, d), out_len(w, k, s, p, d)
    macs = n * cout * ho * wo * (cin // g) * k * k
    assert report.macs == macs
    assert report.flops == 2 * macs + (n * cout * ho * wo if bias else 0)
    assert report.params == cout * (cin // g) * k * k + (cout if bias else 0)


@pytest.mark.parametrize("cin, cout, k, s, p, d, g", [(3, 4, 3, 1, 0, 1, 1), (4, 6, 5, 2, 2, 1, 2), (4, 4, 3, 1, 3, 3, 4)])
def test_conv1d_macs(cin, cout, k, s, p, d, g):
    n, length = 3, 17
    report = slimkit.profile(nn.Conv1d(cin, cout, k, s, p, d, g), torch.randn(n, cin, length))
    assert report.macs == n * cout * out_len(length, k, s, p, d) * (cin // g) * k


def test_conv3d_macs():
    report = slimkit.profile(nn.Conv3d(2, 4, (3, 2, 1), stride=(1, 2, 1)), torch.randn(1, 2, 5, 6, 7))
    assert report.macs == 4 * 3 * 3 * 7 * 2 * (3 * 2 * 1)


@pytest.mark.parametrize("cin, cout, k, s, p, op, g", [(3, 5, 3, 2, 1, 1, 1), (4, 6, 4, 2, 1, 0, 2), (2, 2, 3, 1, 0, 0, 1)])
def test_conv_transpose2d_macs(cin, cout, k, s, p, op, g):
    n, h, w = 2, 5, 4
    layer = nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op, groups=g)
    report = slimkit.profile(layer, torch.randn(n, cin, h, w))
    # every input element is multiplied by a (cout/g) x k x k slice of the kernel
    assert report.macs == n * cin * h * w * (cout // g) * k * k


@pytest.mark.parametrize("shape", [(4, 12), (2, 3, 12), (12,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_macs(shape, bias):
    layer = nn.Linear(12, 7, bias=bias)
    report = slimkit.profile(layer, torch.randn(shape))
    tokens = math.prod(shape[:-1])
    assert report.macs == tokens * 12 * 7
    assert report.flops == 2 * tokens * 12 * 7 + (tokens * 7 if bias else 0)


@pytest.mark.parametrize("layer, shape", [(nn.BatchNorm2d(5), (2, 5, 6, 7)), (nn.BatchNorm1d(5), (3, 5)),
                                          (nn.BatchNorm1d(5, affine=False), (3, 5, 4))])
def test_batchnorm_eval_is_one_mac_per_element(layer, shape):
    report = slimkit.profile(layer, torch.randn(shape))
    assert report.macs == math.prod(shape)
    assert report.flops == 2 * math.prod(shape)
    assert layer.training  # restored


@pytest.mark.parametrize("layer", [nn.LayerNorm(7), nn.GroupNorm(1, 5), nn.InstanceNorm2d(5)])
def test_norms_with_runtime_statistics(layer):
    shape = (2, 5, 3, 7)
    report = slimkit.profile(layer, torch.randn(shape))
    assert (report.macs, report.flops) == (math.prod(shape), 6 * math.prod(shape))


@pytest.mark.parametrize(
    "layer, out_hw, window",
    [
        (nn.MaxPool2d(2), (4, 5), 4),
        (nn.MaxPool2d(3, stride=2, padding=1), (4, 5), 9),
        (nn.AvgPool2d(2), (4, 5), 4),
        (nn.AvgPool2d((3, 1), stride=1), (6, 10), 3),
    ],
)
def test_pooling(layer, out_hw, window):
    n, c = 2, 3
    report = slimkit.profile(layer, torch.randn(n, c, 8, 10))
    outputs = n * c * out_hw[0] * out_hw[1]
    if isinstance(layer, nn.AvgPool2d):  # a depthwise conv with weights 1/k: one MAC per window element
        assert (report.macs, report.flops) == (outputs * window, 2 * outputs * window)
    else:  # comparisons only
        assert (report.macs, report.flops) == (0, outputs * window)


@pytest.mark.parametrize(
    "size_in, size_out, per_axis",
    [((8, 10), (1, 1), (8, 10)), ((8, 10), (4, 5), (8, 10)), ((7, 5), (3, 2), (3 + 3 + 3, 3 + 3))],
)
def test_adaptive_avg_pool_sums_window_sizes(size_in, size_out, per_axis):
    # 7 -> 3: windows [0,3) [2,5) [4,7) = 3+3+3; 5 -> 2: [0,3) [2,5) = 3+3
    n, c = 2, 3
    report = slimkit.profile(nn.AdaptiveAvgPool2d(size_out), torch.randn(n, c, *size_in))
    assert report.macs == n * c * per_axis[0] * per_axis[1]
    max_report = slimkit.profile(nn.AdaptiveMaxPool2d(size_out), torch.randn(n, c, *size_in))
    assert (max_report.macs, max_report.flops) == (0, report.macs)


def _attention_macs(batch, q_len, kv_len, embed):
    projections = batch * (q_len + 2 * kv_len) * embed * embed + batch * q_len * embed * embed
    return projections + 2 * batch * q_len * kv_len * embed  # q @ k^T and attn @ v over all heads


@pytest.mark.parametrize("batch_first, need_weights", [(False, True), (True, False), (True, True)])
def test_multihead_attention(batch_first, need_weights):
    batch, q_len, kv_len, embed, heads = 3, 5, 7, 16, 4
    mha = nn.MultiheadAttention(embed, heads, batch_first=batch_first)
    q = torch.randn(batch, q_len, embed) if batch_first else torch.randn(q_len, batch, embed)
    kv = torch.randn(batch, kv_len, embed) if batch_first else torch.randn(kv_len, batch, embed)
    report = slimkit.profile(mha, {"query": q, "key": kv, "value": kv, "need_weights": need_weights})
    assert report.macs == _attention_macs(batch, q_len, kv_len, embed)
    # out_proj's weights are used functionally (the submodule never runs): its params go to the MHA row
    assert [(r.fqn, r.params) for r in report.layers] == [("<root>", 4 * embed * embed + 4 * embed)]


class ExplicitAttention(nn.Module):
    """Attention written out functionally: q @ k^T / sqrt(d), softmax, @ v (no leaf module does the matmuls)."""

    def __init__(self, embed: int, heads: int, fused: bool = False) -> None:
        super().__init__()
        self.heads, self.fused = heads, fused
        self.qkv = nn.Linear(embed, 3 * embed)
        self.proj = nn.Linear(embed, embed)

    def forward(self, x):
        b, n, e = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, e // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, N, d)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1) / math.sqrt(e // self.heads)).softmax(dim=-1)  # (B, H, N, N)
            y = torch.matmul(attn, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, e))


@pytest.mark.parametrize("fused", [False, True])
def test_functional_attention_counted_and_attributed(fused):
    batch, tokens, embed, heads = 2, 6, 16, 4
    model = ExplicitAttention(embed, heads, fused)
    report = slimkit.profile(model, torch.randn(batch, tokens, embed))
    assert report.macs == _attention_macs(batch, tokens, tokens, embed)
    rows = {row.fqn: row for row in report.layers}
    assert rows["<root>"].macs == 2 * batch * tokens * tokens * embed  # the functional matmuls of forward
    assert rows["qkv"].macs == batch * tokens * embed * 3 * embed
    assert sum(r.macs for r in report.layers) == report.macs
    assert sum(r.flops for r in report.layers) == report.flops
    assert sum(r.params for r in report.layers) == report.params


def test_einsum_and_bmm():
    class Mix(nn.Module):
        def forward(self, a, b):
            return torch.einsum("bij,bjk->bik", a, b) + torch.bmm(a, b)

    report = slimkit.profile(Mix(), (torch.randn(2, 3, 4), torch.randn(2, 4, 5)))
    assert report.macs == 2 * (2 * 3 * 4 * 5)
    assert report.flops == 2 * report.macs + 2 * 3 * 5  # + the add


def test_lstm_counted():
    lstm = nn.LSTM(4, 6, num_layers=2)
    report = slimkit.profile(lstm, torch.randn(5, 3, 4))
    tokens = 5 * 3
    assert report.macs == tokens * (24 * 4 + 24 * 6) + tokens * (24 * 6 + 24 * 6)


def test_shared_module_counted_per_call_and_tied_weights_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8)
            self.block = nn.Linear(8, 8, bias=False)
            self.head = nn.Linear(8, 50, bias=False)
            self.head.weight = self.emb.weight  # tied

        def forward(self, idx):
            x = self.emb(idx)
            x = self.block(self.block(x))  # one module, two calls
            return self.head(x)

    model = Tied()
    report = slimkit.profile(model, torch.tensor([[1, 2, 3]]))
    assert report.params == 50 * 8 + 8 * 8
    assert report.size_bytes == (50 * 8 + 8 * 8) * 4
    assert report.macs == 2 * 3 * 8 * 8 + 3 * 8 * 50
    block = next(r for r in report.layers if r.fqn == "block")
    assert block.calls == 2 and block.macs == 2 * 3 * 8 * 8
    assert sum(r.params for r in report.layers) == report.params


def test_rows_sum_to_totals_on_a_small_cnn_and_training_flag_restored():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    ).train()
    report = slimkit.profile(model, torch.randn(1, 1, 12, 12))
    assert [r.fqn for r in report.layers] == [str(i) for i in range(8)]
    assert sum(r.macs for r in report.layers) == report.macs
    assert report.layers[4].output_shape == (1, 8, 4, 4)
    assert report.uncounted_ops == {}
    assert all(m.training for m in model.modules())
    expected = 1 * 4 * 144 * 9 + 4 * 144 + 8 * 16 * 2 * 9 + 8 * 16 + 8 * 3
    assert report.macs == expected


def test_nonzero_params():
    layer = nn.Linear(10, 10)
    with torch.no_grad():
        layer.weight[:, :4] = 0
    report = slimkit.profile(layer, torch.randn(1, 10))
    assert report.nonzero_params == 110 - 40 - int((layer.bias == 0).sum())
    assert report.sparsity == pytest.approx(40 / 110)


# ---------------------------------------------------------------- peers


PEER_LAYERS = [
    (nn.Conv2d(3, 8, 3, padding=1), (2, 3, 16, 16)),
    (nn.Conv2d(8, 8, 3, stride=2, groups=4, bias=False), (1, 8, 15, 15)),
    (nn.Conv2d(6, 12, 5, padding=2, dilation=2, groups=3), (1, 6, 20, 20)),
    (nn.Conv1d(4, 6, 3, stride=2), (2, 4, 21)),
    (nn.Linear(32, 10), (4, 32)),
]


@pytest.mark.parametrize("layer, shape", PEER_LAYERS)
def test_agrees_with_thop(layer, shape):
    thop = pytest.importorskip("thop")
    x = torch.randn(shape)
    report = slimkit.profile(layer, x)
    # thop adds buffers to the modules it profiles and sums params over children: give it a wrapped copy
    macs, params = thop.profile(nn.Sequential(copy.deepcopy(layer)), inputs=(x,), verbose=False)
    assert report.macs == int(macs)
    assert report.params == int(params)


@pytest.mark.parametrize("layer, shape", PEER_LAYERS + [(nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (2, 4, 5, 5))])
def test_agrees_with_fvcore(layer, shape):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    x = torch.randn(shape)
    counter = fvcore_nn.FlopCountAnalysis(layer.eval(), (x,))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert slimkit.profile(layer, x).macs == int(counter.total())  # fvcore's "flop" is one multiply-add


class Spectral(nn.Module):
    def forward(self, x):
        return torch.fft.rfft(x).abs()


def test_ops_without_a_rule_are_reported_not_guessed():
    report = slimkit.profile(Spectral(), torch.randn(2, 16))
    assert report.uncounted_ops == {"_fft_r2c": 1}
    assert "not counted (no rule): _fft_r2c (x1)" in report.table()


def test_register_op_counter_extends_counting(monkeypatch):
    from slimkit.profile import OpCount
    from slimkit.profile.counters import OP_COUNTERS

    def fft_cost(args, kwargs, out):  # n log2 n butterflies, say
        n = args[0].shape[-1]
        return OpCount(0, args[0].numel() * int(math.log2(n)))

    monkeypatch.setitem(OP_COUNTERS, torch.ops.aten._fft_r2c, fft_cost)
    report = slimkit.profile(Spectral(), torch.randn(2, 16))
    assert report.uncounted_ops == {}
    assert report.ops["_fft_r2c"]["flops"] == 2 * 16 * 4


def test_multihead_attention_agrees_with_fvcore():
    fvcore_nn = pytest.importorskip("fvcore.nn")
    mha = nn.MultiheadAttention(16, 4).eval()
    q, kv = torch.randn(5, 2, 16), torch.randn(7, 2, 16)
    counter = fvcore_nn.FlopCountAnalysis(mha, (q, kv, kv))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert slimkit.profile(mha, (q, kv, kv)).macs == int(counter.total()) == _attention_macs(2, 5, 7, 16)
