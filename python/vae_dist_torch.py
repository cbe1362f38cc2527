"""Load a vae_dist checkpoint into a PyTorch nn.Module.

    import vae_dist_torch
    model = vae_dist_torch.load("runs/fashion-mnist/ckpt/step-00004680.h5")
    mu, logvar = model.encode(x)          # x: (B, D) float32 in [0, 1]
    x_hat = model.decode(mu)              # Bernoulli: probabilities; Gaussian: means
    recon = model.reconstruct(x)          # decode(encode(x).mu), as `vae_dist recon` draws

The model is rebuilt from the checkpoint alone: its config attribute gives the
architecture ([model] hidden, latent, activation, likelihood), /model/layout
names each tensor's place in the flat /model/params buffer (docs/formats.md),
and the weights are (out, in) like nn.Linear's. The CRC-32 of the parameters
is checked before use. Needs h5py, NumPy and PyTorch.
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


class VAE(nn.Module):
    """The vae_dist MLP VAE: encoder, fused (mu, logvar) head, mirrored decoder."""

    def __init__(self, n_in, hidden, latent, activation="relu", likelihood="bernoulli", obs_logvar=0.0):
        super().__init__()
        act = _ACTIVATIONS[activation]
        self.latent, self.likelihood = latent, likelihood
        enc, prev = [], n_in
        for h in hidden:
            enc += [nn.Linear(prev, h), act()]
            prev = h
        self.encoder = nn.Sequential(*enc)
        self.head = nn.Linear(prev, 2 * latent)  # rows [0, Z): mu, [Z, 2Z): log sigma^2
        dec, prev = [], latent
        for h in reversed(hidden):
            dec += [nn.Linear(prev, h), act()]
            prev = h
        dec.append(nn.Linear(prev, n_in))
        self.decoder = nn.Sequential(*dec)
        self.obs_logvar = nn.Parameter(torch.full((n_in,), float(obs_logvar)),
                                       requires_grad=likelihood == "gaussian_learned")

    def encode(self, x):
        h = self.head(self.encoder(x))
        return h[:, :self.latent], h[:, self.latent:]

    def decode(self, z):
        out = self.decoder(z)
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
    m = cfg["model"]
    hidden = [int(h) for h in m["hidden"].split(",")]
    model = VAE(int(attrs["data_n_dim"]), hidden, int(m["latent"]), m["activation"], m["likelihood"],
                float(m["obs_logvar"]))
    linears = [l for l in model.encoder if isinstance(l, nn.Linear)]
    names = [f"enc.{i}" for i in range(len(hidden))]
    linears.append(model.head)
    names.append("enc.head")
    dec = [l for l in model.decoder if isinstance(l, nn.Linear)]
    linears += dec
    names += [f"dec.{i}" for i in range(len(hidden))] + ["dec.out"]
    with torch.no_grad():
        for layer, name in zip(linears, names):
            w, b = t[name + ".w"], t[name + ".b"]
            if tuple(w.shape) != tuple(layer.weight.shape):
                raise ValueError(f"{path}: tensor {name}.w is {w.shape}, the model expects "
                                 f"{tuple(layer.weight.shape)}")
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        if "dec.obs_logvar" in t:
            model.obs_logvar.copy_(torch.from_numpy(t["dec.obs_logvar"]))
    return model.eval()
