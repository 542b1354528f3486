"""Synthetic faces, deterministic from a seed: the embedded default dataset of the report.

A face is a small set of parameters (``FaceParams``): an *expression* (brows, eyes,
mouth) that defines the emotion, and *nuisance* (pose, scale, lighting, skin tone,
hair, background, glasses, hat) that does not. ``render_faces`` rasterises a batch of
them into grayscale images **and** a face-part label map in the CelebAMask-HQ class
order (``PART_CLASSES``), so the same generator serves expression recognition (here),
face parsing (masks) and, through the expression parameters, audio-visual clips.

Expression classes follow FER2013's seven emotions. Class means are placed so that the
confusions real FER shows appear (fear/surprise share raised brows, wide eyes and an open
mouth; sad/neutral differ by a small frown; angry/disgust share lowered brows and narrowed
eyes); a per-face intensity draws many expressions towards neutral; some labels are
flipped, mostly to the confusable partner. Class shares default to seed 000 §8.1.1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

#: Seed 000 §8.1.1, share (%) per class of the unified index.
SEED_CLASS_SHARES = {
    "angry": 11.37, "disgust": 3.49, "fear": 9.85, "happy": 23.21,
    "neutral": 23.57, "sad": 14.44, "surprise": 14.10,
}

#: CelebAMask-HQ face-parsing classes (index = label value). ``l_*`` is the subject's left,
#: which appears on the image's right.
PART_CLASSES = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
    "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
_P = {n: i for i, n in enumerate(PART_CLASSES)}

# Expression space: brow raise, brow slant (+: inner ends down, a frown), eye opening,
# mouth curvature (+: corners up), mouth opening, mouth width, upper-lip raise.
EXPR = ("brow_raise", "brow_slant", "eye_open", "mouth_curve", "mouth_open", "mouth_width", "lip_raise")
_NEUTRAL = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
_CLASS_MEANS = {
    "angry":    [-0.70, 0.85, 0.70, -0.20, 0.05, 0.88, 0.10],
    "disgust":  [-0.45, 0.50, 0.62, -0.40, 0.12, 0.92, 0.85],
    "fear":     [0.65, -0.55, 1.40, -0.25, 0.45, 1.12, 0.10],
    "happy":    [0.10, 0.00, 0.80, 0.85, 0.30, 1.22, 0.00],
    "neutral":  [0.00, 0.00, 1.00, 0.00, 0.00, 1.00, 0.00],
    "sad":      [0.15, -0.70, 0.82, -0.55, 0.00, 0.95, 0.00],
    "surprise": [0.95, -0.10, 1.50, 0.00, 0.80, 0.86, 0.00],
}
_EXPR_STD = np.array([0.30, 0.30, 0.20, 0.25, 0.13, 0.10, 0.20])
_EXPR_LO = np.array([-1.2, -1.2, 0.25, -1.2, 0.0, 0.6, 0.0])
_EXPR_HI = np.array([1.3, 1.3, 1.8, 1.2, 1.1, 1.4, 1.2])
#: where a noisy label goes, most of the time
CONFUSABLE = {"angry": "disgust", "disgust": "angry", "fear": "surprise", "surprise": "fear",
              "sad": "neutral", "neutral": "sad", "happy": "neutral"}


@dataclass
class FaceParams:
    """A batch of N faces, one array of shape (N,) per parameter."""

    label: np.ndarray  # true expression class index
    expr: np.ndarray  # (N, 7) in EXPR order
    roll: np.ndarray
    yaw: np.ndarray
    scale: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    face_width: np.ndarray
    skin: np.ndarray
    light: np.ndarray
    hair_tone: np.ndarray
    hairline: np.ndarray
    background: np.ndarray
    bg_gradient: np.ndarray
    cloth: np.ndarray
    glasses: np.ndarray  # bool
    hat: np.ndarray  # bool
    earring: np.ndarray  # bool
    necklace: np.ndarray  # bool
    noise: np.ndarray

    def __len__(self):
        return len(self.label)


def sample_face_params(rng: np.random.Generator, labels: np.ndarray, intensity=(0.35, 1.1)) -> FaceParams:
    """Expression from the class-conditional distribution of each label, nuisance at random.

    ``intensity`` bounds how far each face moves from neutral towards its class mean.
    """
    n = len(labels)
    means = np.array([_CLASS_MEANS[c] for c in FER_CLASSES])[labels]
    intensity = rng.uniform(*intensity, size=(n, 1))
    expr = _NEUTRAL + intensity * (means - _NEUTRAL) + rng.normal(size=(n, len(EXPR))) * _EXPR_STD
    expr = np.clip(expr, _EXPR_LO, _EXPR_HI)
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    dark_hair = rng.random(n) < 0.75
    return FaceParams(
        label=np.asarray(labels), expr=expr,
        roll=np.deg2rad(rng.normal(0, 7, n)), yaw=u(-1, 1), scale=u(0.86, 1.08),
        tx=rng.normal(0, 0.05, n), ty=rng.normal(0.02, 0.05, n), face_width=u(0.88, 1.1),
        skin=u(0.35, 0.85), light=u(-0.35, 0.35),
        hair_tone=np.where(dark_hair, u(0.05, 0.3), u(0.55, 0.8)), hairline=u(-0.62, -0.42),
        background=u(0.0, 1.0), bg_gradient=u(-0.3, 0.3), cloth=u(0.05, 0.95),
        glasses=rng.random(n) < 0.05, hat=rng.random(n) < 0.05,
        earring=rng.random(n) < 0.08, necklace=rng.random(n) < 0.05, noise=u(0.005, 0.04),
    )


# ----------------------------------------------------------------------------- rendering
def _col(a):
    return np.asarray(a, dtype=np.float32)[:, None, None]


def _soft(dist, px):
    """Coverage of a shape from a signed distance (negative inside), anti-aliased over a pixel."""
    return np.clip(0.5 - dist / px, 0.0, 1.0)


def _ellipse(u, v, cu, cv, ru, rv, px):
    d = (np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2) - 1.0) * np.minimum(ru, rv)
    return _soft(d, px)


def _segment(u, v, au, av, bu, bv, half_thickness, px):
    du, dv = bu - au, bv - av
    t = np.clip(((u - au) * du + (v - av) * dv) / (du * du + dv * dv + 1e-9), 0.0, 1.0)
    d = np.hypot(u - au - t * du, v - av - t * dv) - half_thickness
    return _soft(d, px)


class _Canvas:
    """Paints layers in order; the label map keeps the last layer covering each pixel."""

    def __init__(self, img):
        self.img = img
        self.lab = np.zeros(img.shape, np.uint8)

    def paint(self, alpha, tone, label=None):
        self.img += alpha * (tone - self.img)
        if label is not None:
            self.lab[alpha > 0.5] = label


def render_faces(p: FaceParams, size: int = 48, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise faces to uint8 images (N, size, size) and part labels (N, size, size)."""
    n, s = len(p), size * supersample
    g = (np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1
    X, Y = g[None, None, :], g[None, :, None]
    cr, sr, sc = _col(np.cos(p.roll)), _col(np.sin(p.roll)), _col(p.scale)
    u = (cr * (X - _col(p.tx)) + sr * (Y - _col(p.ty))) / sc  # canonical face frame
    v = (-sr * (X - _col(p.tx)) + cr * (Y - _col(p.ty))) / sc
    px = 2.0 / (s * sc)
    fw, yaw = _col(p.face_width), _col(p.yaw) * 0.09
    e = {k: _col(p.expr[:, i]) for i, k in enumerate(EXPR)}

    # background: tone + linear gradient
    cv = _Canvas(np.clip(_col(p.background) + _col(p.bg_gradient) * X + 0 * Y, 0, 1).astype(np.float32))
    skin = _col(p.skin) * (1 + _col(p.light) * np.clip(u, -1, 1))

    cv.paint(_soft(1.02 + 0.15 * u**2 - v, px), _col(p.cloth), _P["cloth"])
    cv.paint(_soft(np.maximum(np.abs(u) - 0.27, 0.45 - v), px), skin * 0.85, _P["neck"])
    cv.paint(_segment(u, v, -0.27, 0.95, 0.27, 0.95, 0.02, px) * _col(p.necklace), 0.92, _P["neck_l"])
    cv.paint(_ellipse(u, v, 0, -0.22, 0.7 * fw, 0.74, px), _col(p.hair_tone), _P["hair"])
    for side, name in ((-1, "r_ear"), (1, "l_ear")):  # subject's left ear is on image right
        cv.paint(_ellipse(u, v, side * 0.6 * fw + yaw, 0.0, 0.085, 0.15, px), skin * 0.9, _P[name])
        cv.paint(_ellipse(u, v, side * 0.62 * fw + yaw, 0.15, 0.025, 0.025, px) * _col(p.earring), 0.95,
                 _P["ear_r"])
    face = _ellipse(u, v, 0, 0.02, 0.6 * fw, 0.78, px)
    cv.paint(face, skin, _P["skin"])
    fringe = face * _soft(v - _col(p.hairline) - 0.06 * np.cos(6 * u), px)
    cv.paint(fringe, _col(p.hair_tone), _P["hair"])

    # brows: segments whose height follows brow_raise and whose inner ends follow brow_slant
    bv = -0.3 - 0.09 * e["brow_raise"]
    for side, name in ((-1, "r_brow"), (1, "l_brow")):
        inner_v, outer_v = bv + 0.07 * e["brow_slant"], bv - 0.035 * e["brow_slant"]
        cv.paint(_segment(u, v, side * 0.1 + yaw, inner_v, side * 0.42 + yaw, outer_v, 0.03, px),
                 skin * 0.25, _P[name])
    # eyes: sclera ellipse with an iris, opening follows eye_open
    for side, name in ((-1, "r_eye"), (1, "l_eye")):
        cu, rv = side * 0.25 + yaw, 0.055 * e["eye_open"]
        eye = _ellipse(u, v, cu, -0.1, 0.11, rv, px)
        cv.paint(eye, 0.55 + 0.35 * skin, _P[name])
        cv.paint(eye * _ellipse(u, v, cu + 0.3 * yaw, -0.1, 0.045, 0.045, px), 0.08, _P[name])
    # nose: bridge shade, nostrils, and the wrinkle that comes with disgust
    cv.paint(_segment(u, v, yaw, -0.05, yaw * 1.4, 0.2, 0.02, px) * 0.6, skin * 0.75, _P["nose"])
    for side in (-1, 1):
        cv.paint(_ellipse(u, v, side * 0.05 + yaw * 1.4, 0.23, 0.035, 0.02, px), skin * 0.35, _P["nose"])
        wrinkle = _segment(u, v, side * 0.05 + yaw, -0.04, side * 0.11 + yaw, 0.02, 0.012, px)
        cv.paint(wrinkle * np.clip(e["lip_raise"], 0, 1), skin * 0.55)
    # mouth: a curve (corners up when smiling) that opens into a dark interior between two lips
    hw = 0.2 * e["mouth_width"]
    x = (u - yaw * 1.2) / hw
    inside = np.clip(1 - x**2, 0, 1)
    centre = 0.47 - 0.05 * e["lip_raise"] - 0.085 * e["mouth_curve"] * x**2
    upper = centre - (0.06 * e["mouth_open"] + 0.006) * np.sqrt(inside) - 0.025 * e["lip_raise"] * inside
    lower = centre + (0.11 * e["mouth_open"] + 0.006) * np.sqrt(inside)
    within = (1 - np.abs(x)) * hw
    lip = 0.035 * (0.5 + 0.5 * np.sqrt(inside))
    cv.paint(_soft(-np.minimum(np.minimum(v - upper + lip, upper - v), within), px), skin * 0.6, _P["u_lip"])
    cv.paint(_soft(-np.minimum(np.minimum(v - lower, lower + lip - v), within), px), skin * 0.6, _P["l_lip"])
    cv.paint(_soft(-np.minimum(np.minimum(v - upper, lower - v), within), px), 0.1, _P["mouth"])
    # accessories
    for side in (-1, 1):
        ring = _ellipse(u, v, side * 0.25 + yaw, -0.1, 0.17, 0.12, px) * (
            1 - _ellipse(u, v, side * 0.25 + yaw, -0.1, 0.145, 0.095, px))
        cv.paint(ring * _col(p.glasses), 0.05, _P["eye_g"])
    cv.paint(_segment(u, v, -0.08 + yaw, -0.12, 0.08 + yaw, -0.12, 0.012, px) * _col(p.glasses), 0.05,
             _P["eye_g"])
    cv.paint(_ellipse(u, v, 0, -0.78, 0.8 * fw, 0.32, px) * _col(p.hat), 1 - _col(p.hair_tone), _P["hat"])

    img = cv.img.reshape(n, size, supersample, size, supersample).mean(axis=(2, 4))
    rng = np.random.default_rng(int(p.expr[:, 0].sum() * 1e6) & 0xFFFFFFFF)  # noise tied to the faces
    img = img + rng.normal(size=img.shape).astype(np.float32) * p.noise[:, None, None]
    img = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    lab = cv.lab[:, supersample // 2::supersample, supersample // 2::supersample]
    return img, lab


# ----------------------------------------------------------------------------- dataset
def sample_labels(rng: np.random.Generator, n: int, shares: dict[str, float] | None = None) -> np.ndarray:
    shares = shares or SEED_CLASS_SHARES
    prob = np.array([shares[c] for c in FER_CLASSES], float)
    return rng.choice(len(FER_CLASSES), size=n, p=prob / prob.sum())


def flip_labels(rng: np.random.Generator, labels: np.ndarray, rate: float) -> np.ndarray:
    """Label noise: a share ``rate`` of labels changes, 70% of them to the confusable partner."""
    out = labels.copy()
    hit = np.flatnonzero(rng.random(len(labels)) < rate)
    partner = np.array([FER_CLASSES.index(CONFUSABLE[c]) for c in FER_CLASSES])
    for i in hit:
        out[i] = partner[labels[i]] if rng.random() < 0.7 else rng.choice(
            [k for k in range(len(FER_CLASSES)) if k != labels[i]])
    return out


def synthetic_faces(n: int, seed: int, size: int = 48, label_noise: float = 0.06, chunk: int = 256,
                    labels: np.ndarray | None = None, intensity=(0.35, 1.1)):
    """``n`` faces: (images uint8 (n,size,size), noisy labels, true labels, part masks).

    Expression classes are drawn with the seed's shares unless ``labels`` fixes them.
    """
    rng = np.random.default_rng(seed)
    true = sample_labels(rng, n) if labels is None else np.asarray(labels)
    params = sample_face_params(rng, true, intensity)
    imgs, masks = [], []
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        part = FaceParams(**{k: getattr(params, k)[sl] for k in params.__dataclass_fields__})
        im, ma = render_faces(part, size)
        imgs.append(im)
        masks.append(ma)
    noisy = flip_labels(rng, true, label_noise)
    return np.concatenate(imgs), noisy, true, np.concatenate(masks)
