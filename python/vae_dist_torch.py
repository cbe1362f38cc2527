"""Load a vae_dist checkpoint into a PyTorch nn.Module.

    import vae_dist_torch
    model = vae_dist_torch.load("runs/fashion-mnist/ckpt/step-00004680.h5")
    mu, logvar = model.encode(x)          # x: (B, D) float32 in [0, 1], NCHW rows for images
    x_hat = model.decode(mu)              # Bernoulli: probabilities; Gaussian: means
    recon = model.reconstruct(x)          # decode(encode(x).mu), as `vae_dist recon` draws

The model is rebuilt from the checkpoint alone: its config attribute gives the
architecture ([model] arch, channels, kernel, stride, padding, hidden, latent,
activation, likelihood), the image_* attributes the picture shape of conv
models, /model/layout each tensor's place in the flat /model/params buffer
and its shape (docs/formats.md): (out, in) like nn.Linear's, (out, in, k, k)
like nn.Conv2d's and (in, out, k, k) like nn.ConvTranspose2d's. The CRC-32 of
the parameters is checked before use. Needs h5py, NumPy and PyTorch.
"""
import configparser
import zlib

import h5py
import numpy as np
import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def read_checkpoint(path):
    """The checkpoint's header (a dict), its config (a ConfigParser) and its tensors (name -> array)."""
    with h5py.File(path, "r") as f:
        attrs = {k: (_text(v) if isinstance(v, (bytes, str)) else v.item() if hasattr(v, "item") else v)
                 for k, v in f.attrs.items()}
        if attrs.get("format") != "vae_dist-checkpoint":
            raise ValueError(f"{path}: attribute 'format' is {attrs.get('format')!r}, "
                             "expected 'vae_dist-checkpoint'")
        params = f["/model/params"][...].astype(np.float32)
        crc = int(f["/model/params"].attrs["crc32"])
        layout = f["/model/layout"][...]
    if zlib.crc32(params.tobytes()) != crc:
        raise ValueError(f"{path}: /model/params fails its CRC-32 (damaged checkpoint)")
    cfg = configparser.ConfigParser(inline_comment_prefixes=None, interpolation=None)
    cfg.read_string(attrs["config"])
    tensors = {}
    for row in layout:
        name = _text(row["name"]).rstrip("\0")
        off, rows, cols = int(row["offset"]), int(row["rows"]), int(row["cols"])
        t = params[off:off + rows * cols]
        tensors[name] = t.reshape(rows, cols) if cols > 1 else t
    return attrs, cfg, tensors


def _per_stage(m, key, n):
    v = [int(x) for x in m.get(key, "1").split(",")]
    return v * n if len(v) == 1 else v


class VAE(nn.Module):
    """The vae_dist VAE, its layers named as in /model/layout ("enc.conv0" is layers["enc_conv0"]).

    mlp:  enc.0 ... (Linear + act), enc.head, dec.0 ... (Linear + act), dec.out.
    conv: enc.conv0 ... (Conv2d + act), flatten, enc.0 ..., enc.head; dec.0 ..., dec.in
          (Linear + act), reshape, dec.conv0 ... (ConvTranspose2d, act between), as docs/conv.md.
    Inputs and outputs are rows (B, D) in NCHW order, like vae_dist's datasets.
    """

    def __init__(self, n_in, model, image=None):
        super().__init__()
        act = _ACTIVATIONS[model.get("activation", "relu")]
        hidden = [] if model.get("hidden", "none") == "none" else [int(h) for h in model["hidden"].split(",")]
        self.latent, self.likelihood = int(model["latent"]), model.get("likelihood", "bernoulli")
        self.image, self.act = image, act()
        conv = model.get("arch", "mlp") == "conv"
        self.enc, self.dec, L = [], [], nn.ModuleDict()
        prev, stages = n_in, []
        if conv:
            c, h, w = image
            ch = [int(x) for x in model["channels"].split(",")]
            k, st, p = (_per_stage(model, key, len(ch)) for key in ("kernel", "stride", "padding"))
            for i, o in enumerate(ch):
                L[f"enc_conv{i}"] = nn.Conv2d(c, o, k[i], st[i], p[i])
                self.enc.append((f"enc_conv{i}", True))
                stages.append((c, o, k[i], st[i], p[i]))
                c, h, w = o, (h + 2 * p[i] - k[i]) // st[i] + 1, (w + 2 * p[i] - k[i]) // st[i] + 1
            self.flat, prev = (c, h, w), c * h * w
        for i, hd in enumerate(hidden):
            L[f"enc_{i}"] = nn.Linear(prev, hd)
            self.enc.append((f"enc_{i}", True))
            prev = hd
        L["enc_head"] = nn.Linear(prev, 2 * self.latent)  # rows [0, Z): mu, [Z, 2Z): log sigma^2
        prev = self.latent
        for i, hd in enumerate(reversed(hidden)):
            L[f"dec_{i}"] = nn.Linear(prev, hd)
            self.dec.append((f"dec_{i}", True))
            prev = hd
        if conv:
            L["dec_in"] = nn.Linear(prev, self.flat[0] * self.flat[1] * self.flat[2])
            self.dec.append(("dec_in", True))
            for j, (c, o, kk, ss, pp) in enumerate(reversed(stages)):
                L[f"dec_conv{j}"] = nn.ConvTranspose2d(o, c, kk, ss, pp)
                self.dec.append((f"dec_conv{j}", j < len(stages) - 1))
        else:
            L["dec_out"] = nn.Linear(prev, n_in)
            self.dec.append(("dec_out", False))
        self.layers = L
        self.obs_logvar = nn.Parameter(torch.full((n_in,), float(model.get("obs_logvar", "0"))),
                                       requires_grad=self.likelihood == "gaussian_learned")

    def _run(self, steps, h):
        for name, has_act in steps:
            layer = self.layers[name]
            if isinstance(layer, nn.Linear):
                h = h.flatten(1)
            elif isinstance(layer, nn.ConvTranspose2d) and h.dim() == 2:
                h = h.view(-1, *self.flat)
            elif isinstance(layer, nn.Conv2d) and h.dim() == 2:
                h = h.view(-1, *self.image)
            h = layer(h)
            h = self.act(h) if has_act else h
        return h.flatten(1)

    def encode(self, x):
        h = self.layers["enc_head"](self._run(self.enc, x))
        return h[:, :self.latent], h[:, self.latent:]

    def decode(self, z):
        out = self._run(self.dec, z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def reconstruct(self, x):
        return self.decode(self.encode(x)[0])

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decode(z), mu, logvar


def load(path):
    """A VAE with the checkpoint's architecture and parameters, in eval mode."""
    attrs, cfg, t = read_checkpoint(path)
    image = None
    if int(attrs.get("image_rows", 0)) > 0:
        image = (int(attrs.get("image_channels", 1)) or 1, int(attrs["image_rows"]), int(attrs["image_cols"]))
    model = VAE(int(attrs["data_n_dim"]), cfg["model"], image)
    with torch.no_grad():
        for key, layer in model.layers.items():
            name = key.replace("_", ".")
            for part, param in (("w", layer.weight), ("b", layer.bias)):
                v = t[f"{name}.{part}"]
                if v.size != param.numel():
                    raise ValueError(f"{path}: tensor {name}.{part} has {v.size} values, the model expects "
                                     f"{tuple(param.shape)}")
                param.copy_(torch.from_numpy(np.ascontiguousarray(v.reshape(tuple(param.shape)))))
        if "dec.obs_logvar" in t:
            model.obs_logvar.copy_(torch.from_numpy(t["dec.obs_logvar"]))
    return model.eval()
