"""Fused recurrent ops: the LSTM over a sequence and the Tree-LSTM node updates of the seed.

All three share one gated-state core: given gate pre-activations z_i, z_o, z_u and one
forget pre-activation z_f per child (the LSTM has one "child": the previous step),

    i, o, u = sigmoid(z_i), sigmoid(z_o), tanh(z_u);  f_k = sigmoid(z_f[k])
    c = i * u + sum_k f_k * c_k;                      h = o * tanh(c)

and each op is that core plus its gate GEMMs (all gates of a matrix in one product); the
gates of a matrix are activated together, with one tanh (``_activate``).
The LSTM op runs a whole sequence, as MXNet's fused ``RNN`` op and cuDNN do: the input's
projection for every step is one GEMM before it (a ``fully_connected`` the caller makes),
and its backward forms the recurrent weight's gradient in one GEMM over all steps.
"""
from __future__ import annotations

from ..registry import register

__all__ = ["lstm", "nary_tree_lstm_cell", "child_sum_tree_lstm_cell"]


def _gate_scale(xp, size: int, tanh_part: slice, dtype, columns: int = 0):
    """The s of ``_activate`` for ``size`` gate units: 1/2 (sigmoid) but 1 on ``tanh_part``;
    with ``columns``, as a full (size, columns) array for gates that run down the rows (a
    broadcast column would make NumPy loop over rows of ``columns`` elements). Returns
    (s, 1 - s, s * s)."""
    s = xp.full(size, 0.5, dtype=dtype)
    s[tanh_part] = 1
    if columns:
        s = xp.ascontiguousarray(xp.broadcast_to(s[:, None], (size, columns)))
    return s, 1 - s, s * s


def _activate(xp, z, scale):
    """Gates from pre-activations z: tanh where ``scale``'s s is 1, sigmoid where 1/2; and
    their slopes d gate / d z. One tanh serves all gates, since sigmoid(x) = (1 + tanh(x/2)) / 2
    (also stable for any |x|): t = tanh(s z), gate = s t + (1 - s), slope = s^2 (1 - t^2)."""
    s, one_minus_s, s2 = scale
    t = z * s
    xp.tanh(t, out=t)
    gates = t * s
    gates += one_minus_s
    slope = t
    xp.multiply(t, t, out=slope)
    xp.subtract(1, slope, out=slope)
    slope *= s2
    return gates, slope


def _gated_state(xp, i, o, u, f, child_c):
    """(h, c) from the gates i, o, u (B, H) and per-child forget gates f and states child_c
    (B, K, H), and a backward from (dh, dc) to the gates (gi, go, gu, gf) and child_c.
    Any 2-D layout works (the LSTM passes (H, B) and (H, 1, B)): the children are axis 1."""
    c = i * u
    c += (f * child_c).sum(axis=1)
    tc = xp.tanh(c)
    h = o * tc

    def backward(dh, dc):
        dc_total = tc * tc
        xp.subtract(1, dc_total, out=dc_total)
        dc_total *= o
        dc_total *= dh
        dc_total += dc
        dc_k = dc_total[:, None]
        return dc_total * u, dh * tc, dc_total * i, dc_k * child_c, dc_k * f
    return h, c, backward


@register("lstm", vjp_needs=True)
def lstm(xp, i2h, h, c, h2h_weight, h2h_bias, reverse=False):
    """An LSTM over a sequence (gate order i, f, u, o as MXNet's LSTMCell): (outputs, h_T, c_T).

    i2h (T, N, 4H) is the input's gate projection ``x_t @ i2h_weight.T + i2h_bias`` of every
    step; h, c (N, H) the initial state; h2h_weight (4H, H). Outputs (T, N, H) are the h of
    each step; ``reverse`` runs from the last step to the first.
    """
    T, N, H = i2h.shape[0], h.shape[0], h.shape[1]
    order = range(T - 1, -1, -1) if reverse else range(T)
    # The steps run transposed, gates down the rows: W (4H, H) @ h.T (H, N) is the faster
    # GEMM for a small batch, and each gate is a contiguous block of rows.
    scale = _gate_scale(xp, 4 * H, slice(2 * H, 3 * H), i2h.dtype, columns=N)
    z_in = xp.ascontiguousarray((i2h + h2h_bias).transpose(0, 2, 1))
    h0, ht, ct = h, xp.ascontiguousarray(h.T), c.T
    outs = xp.empty((T, H, N), dtype=i2h.dtype)
    steps = [None] * T
    for t in order:
        z = h2h_weight @ ht
        z += z_in[t]
        g, slope = _activate(xp, z, scale)
        ht, ct, backward = _gated_state(xp, g[:H], g[3 * H:], g[2 * H:3 * H], g[H:2 * H, None], ct[:, None])
        steps[t] = backward, slope
        outs[t] = ht
    outs = xp.ascontiguousarray(outs.transpose(0, 2, 1))

    def vjp(grads, needed):
        g_out, dh, dc = grads
        g_out = xp.ascontiguousarray(g_out.transpose(0, 2, 1))
        dh, dc = dh.T, dc.T
        dz = xp.empty((T, 4 * H, N), dtype=i2h.dtype)
        for t in reversed(order):
            backward, slope = steps[t]
            d = dz[t]
            d[:H], d[3 * H:], d[2 * H:3 * H], gf, dcc = backward(g_out[t] + dh, dc)
            d[H:2 * H] = gf[:, 0]
            d *= slope
            dh, dc = h2h_weight.T @ d, dcc[:, 0]
        dz = xp.ascontiguousarray(dz.transpose(0, 2, 1))
        flat = dz.reshape(T * N, 4 * H)
        gw = None
        if needed[3]:  # the h each step read: the previous step's output, h0 for the first
            prev = xp.concatenate([outs[1:], h0[None]] if reverse else [h0[None], outs[:-1]], axis=0)
            gw = flat.T @ prev.reshape(T * N, H)
        return (dz, xp.ascontiguousarray(dh.T), xp.ascontiguousarray(dc.T), gw,
                flat.sum(axis=0) if needed[4] else None)
    return (outs, xp.ascontiguousarray(ht.T), xp.ascontiguousarray(ct.T)), vjp


@register("nary_tree_lstm_cell")
def nary_tree_lstm_cell(xp, x, child_h, child_c, i2h_weight, i2h_bias, h2h_weight, h2h_bias):
    """Tree-LSTM node with N ordered children, each with its own weights (Tai et al. 2015, 3.2).

    child_h, child_c: (B, N, H), zeros for absent children. Gate order i, o, u, f_1..f_N;
    i2h_weight is ((3+N)H, input), h2h_weight is ((3+N)H, N*H) over the concatenated h_k.
    """
    B, N, H = child_h.shape
    hcat = child_h.reshape(B, N * H)
    z = x @ i2h_weight.T + i2h_bias + hcat @ h2h_weight.T + h2h_bias
    g, slope = _activate(xp, z, _gate_scale(xp, z.shape[1], slice(2 * H, 3 * H), z.dtype))
    h, c, backward = _gated_state(xp, g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H],
                                  g[:, 3 * H:].reshape(B, N, H), child_c)

    def vjp(grads):
        gi, go, gu, gf, dcc = backward(*grads)
        dz = xp.concatenate([gi, go, gu, gf.reshape(B, N * H)], axis=1) * slope
        db = dz.sum(axis=0)
        return (dz @ i2h_weight, (dz @ h2h_weight).reshape(B, N, H), dcc, dz.T @ x, db,
                dz.T @ hcat, db)
    return (h, c), vjp


@register("child_sum_tree_lstm_cell")
def child_sum_tree_lstm_cell(xp, x, child_h, child_c, child_mask, i2h_weight, i2h_bias,
                             hs2h_weight, hs2h_bias, hc2h_weight, hc2h_bias):
    """Child-Sum Tree-LSTM node (Tai et al. 2015, 3.1) over any number of unordered children.

    child_h, child_c: (B, K, H) padded, child_mask (B, K) is 1 for real children. The gates
    i, o, u read the sum of the children's h; each child k gets its own forget gate from
    its own h_k. i2h_weight is (4H, input) in gate order i, o, u, f; hs2h_weight (3H, H);
    hc2h_weight (H, H).
    """
    B, K, H = child_h.shape
    m = child_mask[:, :, None].astype(child_h.dtype)
    hs = (child_h * m).sum(axis=1)
    zx = x @ i2h_weight.T + i2h_bias
    ziou = zx[:, :3 * H] + hs @ hs2h_weight.T + hs2h_bias
    flat_h = child_h.reshape(B * K, H)  # 2-D GEMMs: NumPy's batched 3-D matmul is far slower here
    zf = zx[:, None, 3 * H:] + (flat_h @ hc2h_weight.T).reshape(B, K, H) + hc2h_bias
    giou, slope_iou = _activate(xp, ziou, _gate_scale(xp, 3 * H, slice(2 * H, 3 * H), ziou.dtype))
    gf, slope_f = _activate(xp, zf, _gate_scale(xp, H, slice(0, 0), zf.dtype))
    h, c, backward = _gated_state(xp, giou[:, :H], giou[:, H:2 * H], giou[:, 2 * H:], gf, child_c * m)

    def vjp(grads):
        gi, go, gu, dzf, dcc = backward(*grads)
        dziou = xp.concatenate([gi, go, gu], axis=1) * slope_iou
        dzf *= slope_f
        dzx = xp.concatenate([dziou, dzf.sum(axis=1)], axis=1)
        dzf2 = dzf.reshape(B * K, H)
        dchild_h = (dziou @ hs2h_weight)[:, None] * m + (dzf2 @ hc2h_weight).reshape(B, K, H)
        return (dzx @ i2h_weight, dchild_h, dcc * m, None, dzx.T @ x, dzx.sum(axis=0),
                dziou.T @ hs, dziou.sum(axis=0), dzf2.T @ flat_h,
                dzf2.sum(axis=0))
    return (h, c), vjp
