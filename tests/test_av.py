"""Audio-visual modality balance (section 07): CREMA-D and RAVDESS loaders on fixture files, the spectrogram, the
frequency/staleness/OGM-GE mechanics, the probes' disjoint samples, and exact resume of a staleness run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from scipy.io import wavfile

from fer_lib.config import ConfigError
from fer_lib.data import DatasetError
from fer_lib.data.audio import log_spectrogram, wav_to_spectrogram
from fer_lib.data.av_clips import AV_CLASSES
from fer_lib.data.crema_d import load_crema_d
from fer_lib.data.ravdess import load_ravdess_fer
from fer_lib.runs import RunStore
from fer_lib.tasks.balance import (StaleGradients, adaptive_k, fit_probe, frequency_updates, ogm_ge_coefficients,
                                   true_class_score)


# ----------------------------------------------------------------------------- fixtures written by the tests
def _wav(path, seconds=1.2, rate=16000, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = (np.random.default_rng(seed).normal(0, 0.1, int(rate * seconds)) * 32767).astype(np.int16)
    wavfile.write(path, rate, x)


def _jpg(path, size=20, seed=0, color=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if color else (size, size)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)


def write_crema_d(root, actors=(1001, 1002, 1003, 1004, 1005, 1006), test_actors=(1007, 1008)):
    labels = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    rows = {"train": [], "test": []}
    for split, group in (("train", actors), ("test", test_actors)):
        for a in group:
            for j, lab in enumerate(labels[:3] if split == "train" else labels[3:]):
                clip = f"{a}_IEO_{lab}_XX"
                rows[split].append(f"{clip},{lab}")
                _wav(root / "AudioWAV" / f"{clip}.wav", seed=a + j)
                for k in range(2):
                    _jpg(root / "Image-01-FPS" / clip / f"{k:05d}.jpg", seed=a + j + k)
    for split in rows:
        (root / f"{split}.csv").write_text("\n".join(rows[split]) + "\n")
    return root


# ----------------------------------------------------------------------------- loaders
def test_spectrogram_shape_and_values_match_a_numpy_stft():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.2, 66150).astype(np.float32)
    s = log_spectrogram(x[None])[0].numpy()
    assert s.shape == (257, 188)  # 22.05 kHz, 3 s, n_fft 512, hop 353
    padded = np.pad(x, 256, mode="reflect")  # centred frames, reflect padding
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)  # periodic Hann, as torch.hann_window
    for t in (0, 17, 187):
        ref = np.log(np.abs(np.fft.rfft(padded[t * 353:t * 353 + 512] * win)) + 1e-7)
        np.testing.assert_allclose(s[:, t], ref, rtol=1e-3, atol=1e-3)


def test_short_clip_is_tiled_to_three_seconds(tmp_path):
    _wav(tmp_path / "a.wav", seconds=0.7)
    assert wav_to_spectrogram(tmp_path / "a.wav").shape == (257, 188)


def test_crema_d_layout_loads_with_speaker_disjoint_validation(tmp_path):
    root = write_crema_d(tmp_path / "crema")
    d = load_crema_d(root, n_frames=3, frame_size=16, val_fraction=0.34, seed=0, cache_dir=tmp_path / "cache")
    assert d.audio.shape == (24, 257, 188) and d.audio.dtype == np.float16
    assert d.frames.shape == (24, 3, 16, 16, 3)  # 2 frames on disk, 3 asked: evenly spaced, repeated
    assert [AV_CLASSES[k] for k in d.labels[:3]] == ["neutral", "happy", "sad"]
    assert (d.split == "test").sum() == 6 and (d.split == "val").sum() == 6
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(d.speaker[d.split == a]) & set(d.speaker[d.split == b])
    again = load_crema_d(root, n_frames=3, frame_size=16, val_fraction=0.34, seed=0, cache_dir=tmp_path / "cache")
    assert again.fingerprint == d.fingerprint


@pytest.mark.parametrize("break_it, message", [
    (lambda r: (r / "AudioWAV" / "1002_IEO_HAP_XX.wav").unlink(), r"missing, e.g. .*1002_IEO_HAP_XX.wav"),
    (lambda r: (r / "AudioWAV" / "1002_IEO_HAP_XX.wav").write_bytes(b"not a wav"), r"cannot read WAV .*1002_IEO_HAP"),
    (lambda r: (r / "train.csv").write_text("1001_IEO_NEU_XX,CALM\n"), r"train.csv: line 1: unknown label 'CALM'"),
    (lambda r: (r / "test.csv").write_text(""), r"test.csv: no clips \(an empty split\)"),
    (lambda r: [p.unlink() for p in (r / "Image-01-FPS" / "1001_IEO_NEU_XX").iterdir()], r"no frames"),
])
def test_crema_d_errors_name_the_file(tmp_path, break_it, message):
    root = write_crema_d(tmp_path / "crema")
    break_it(root)
    with pytest.raises(DatasetError, match=message):
        load_crema_d(root, frame_size=16, cache_dir=tmp_path / "cache")


def write_fer_folders(root, per_class=4):
    classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    for k, c in enumerate(classes):
        for i in range(per_class):
            for j, (top, name) in enumerate((("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest"))):
                _jpg(root / top / c / f"{name}_{k}{i}.jpg", 48, seed=1000 * j + 10 * k + i, color=False)
    return root


def test_ravdess_stand_in_splits_by_actor_and_pairs_faces_of_the_same_emotion(tmp_path):
    rav = tmp_path / "ravdess"
    for actor in range(1, 9):
        for emo in ("01", "03", "04", "05", "06", "07", "08"):  # 08 surprised is skipped
            _wav(rav / f"Actor_{actor:02d}" / f"03-01-{emo}-01-01-01-{actor:02d}.wav", seconds=0.5, seed=actor)
    fer = write_fer_folders(tmp_path / "fer")
    d = load_ravdess_fer(rav, fer, n_frames=2, frame_size=48, val_fraction=0.25, test_fraction=0.25, seed=1,
                         cache_dir=tmp_path / "cache")
    assert len(d) == 8 * 6 and any("skipped 8 surprised" in n for n in d.notes)
    assert {s: len(set(d.speaker[d.split == s])) for s in ("train", "val", "test")} == {"train": 4, "val": 2,
                                                                                        "test": 2}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(d.speaker[d.split == a]) & set(d.speaker[d.split == b])
    for s in ("val", "test"):  # both genders in the held-out splits
        assert {int(a[-2:]) % 2 for a in set(d.speaker[d.split == s])} == {0, 1}
    from fer_lib.data import load_fer2013

    faces = load_fer2013(fer)
    lookup = {faces.images[i].tobytes(): i for i in range(len(faces))}
    for i in range(len(d)):
        for f in d.frames[i]:
            j = lookup[f.tobytes()]
            assert faces.classes[faces.labels[j]] == AV_CLASSES[d.labels[i]]  # same emotion
            assert faces.split[j] == d.split[i]  # from the matching FER2013 split


def write_ravdess(root, actors=range(1, 9)):
    for actor in actors:
        for emo in ("01", "03", "04", "05", "06", "07"):
            _wav(root / f"Actor_{actor:02d}" / f"03-01-{emo}-01-01-01-{actor:02d}.wav", seconds=0.5, seed=actor)
    return root


def _other_cpu(monkeypatch, module):
    """Decode as another CPU family would: the same spectrograms but for their last bits."""
    decode = module.wav_to_spectrogram
    monkeypatch.setattr(module, "wav_to_spectrogram", lambda *a, **k: np.nextafter(decode(*a, **k), np.inf))


@pytest.mark.parametrize("source", ["ravdess", "crema_d"])
def test_av_fingerprint_names_the_files_not_the_decoded_floats(tmp_path, monkeypatch, source):
    """The 07 bug of 2026-12-07: spectrograms decoded on AVX2 and AVX-512 differ in their last bits, and a
    fingerprint that hashed them moved every 07 run key with the CPU family."""
    import shutil

    from fer_lib.data import crema_d, ravdess

    module = {"ravdess": ravdess, "crema_d": crema_d}[source]
    root = write_ravdess(tmp_path / "ravdess") if source == "ravdess" else write_crema_d(tmp_path / "crema")
    fer = write_fer_folders(tmp_path / "fer") if source == "ravdess" else None

    def load(root, cache, **kw):
        if source == "ravdess":
            return load_ravdess_fer(root, fer, val_fraction=0.25, test_fraction=0.25, cache_dir=tmp_path / cache, **kw)
        return load_crema_d(root, frame_size=16, val_fraction=0.34, cache_dir=tmp_path / cache, **kw)

    here = load(root, "a")
    with monkeypatch.context() as m:
        _other_cpu(m, module)
        there = load(root, "b")
    assert not np.array_equal(here.audio, there.audio)  # the decoded floats differ ...
    assert there.fingerprint == here.fingerprint  # ... the data is the same
    moved = tmp_path / "copied"
    shutil.copytree(root, moved)  # a copy elsewhere, new mtimes: same files, same fingerprint
    assert load(moved, "c").fingerprint == here.fingerprint
    assert load(root, "d", hop=300).fingerprint != here.fingerprint  # another decoding recipe
    wav = sorted(root.rglob("*.wav"))[3]
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1  # one bit of one sample
    wav.write_bytes(bytes(data))
    assert load(root, "e").fingerprint != here.fingerprint


def test_synthetic_av_fingerprint_names_the_generator(monkeypatch):
    from fer_lib.data import audio
    from fer_lib.data.synthetic_av import synthetic_av_clips

    here = synthetic_av_clips(12, 6, 6, seed=0)
    spectrogram = audio.log_spectrogram
    monkeypatch.setattr(audio, "log_spectrogram", lambda *a, **k: spectrogram(*a, **k) * (1 + 1e-3))
    there = synthetic_av_clips(12, 6, 6, seed=0)
    assert not np.array_equal(here.audio, there.audio)
    assert there.fingerprint == here.fingerprint
    assert synthetic_av_clips(12, 6, 6, seed=1).fingerprint != here.fingerprint


# ----------------------------------------------------------------------------- the balancing mechanics
def test_ogm_ge_coefficient_hand_worked():
    # two samples, label 0. audio logits [2, 0] and [0, 0]: softmax true-class scores e^2/(e^2+1) and 1/2
    # visual logits [0, 0] and [0, 1]: scores 1/2 and 1/(1+e)
    labels = torch.tensor([0, 0])
    s_a = true_class_score(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), labels).item()
    s_v = true_class_score(torch.tensor([[0.0, 0.0], [0.0, 1.0]]), labels).item()
    assert s_a == pytest.approx(math.e**2 / (math.e**2 + 1) + 0.5, abs=1e-6)  # 1.380797
    assert s_v == pytest.approx(0.5 + 1 / (1 + math.e), abs=1e-6)  # 0.768941
    # rho_v = 0.768941 / 1.380797 = 0.556882 < 1: audio dominates, rho_a = 1 / rho_v = 1.795713,
    # k_a = 1 - tanh(0.8 * 1.795713) = 1 - tanh(1.436570) = 1 - (e^2.873141 - 1) / (e^2.873141 + 1)
    #     = 1 - 16.691 / 18.691 = 0.106995
    k_a, k_v = ogm_ge_coefficients(s_a, s_v, 0.8)
    assert k_v == 1.0 and k_a == pytest.approx(0.106995, abs=1e-5)
    k_a, k_v = ogm_ge_coefficients(s_v, s_a, 0.8)  # swapped: the visual one is modulated
    assert k_a == 1.0 and k_v == pytest.approx(0.106995, abs=1e-5)
    assert ogm_ge_coefficients(1.0, 1.0, 0.8) == pytest.approx((1 - math.tanh(0.8), 1.0))  # tie: the reference's else


def test_frequency_schedule_and_adaptive_rule():
    assert [s for s in range(1, 13) if frequency_updates(s, 3)] == [3, 6, 9, 12]
    assert [adaptive_k(g, 0.05, 4) for g in (0.0, 0.049, 0.05, 0.12, 0.5)] == [1, 1, 2, 3, 4]


def test_staleness_applies_the_gradient_from_tau_steps_before():
    # a one-parameter "encoder" whose loss at step s is c_s * w, so its gradient at step s is c_s whatever w is:
    # with SGD (lr 0.1) and tau = 2, w_s = w_{s-1} - 0.1 * c_{s-2} from step 3 on, unchanged at steps 1 and 2
    w = nn.Parameter(torch.tensor(1.0))
    opt, stale = torch.optim.SGD([w], lr=0.1), StaleGradients(2)
    c = [3.0, -1.0, 2.0, 5.0, 0.5]
    trajectory = []
    for cs in c:
        opt.zero_grad()
        (cs * w).backward()
        stale.swap([w])
        opt.step()
        trajectory.append(w.item())
    expected = [1.0, 1.0, 1.0 - 0.3, 1.0 - 0.3 + 0.1, 1.0 - 0.3 + 0.1 - 0.2]
    np.testing.assert_allclose(trajectory, expected, atol=1e-6)
    assert [g[0].item() for g in stale.queue] == [5.0, 0.5]  # what is still to come


# ----------------------------------------------------------------------------- through the engine
TINY = dict(data={"source": "synthetic", "n_train": 64, "n_val": 32, "n_test": 32, "frame_size": 16, "seed": 2},
            model={"audio_arch": "resnet18", "visual_arch": "resnet18", "audio_pool": 4,
                   "audio_kwargs": {"channels": [4, 8, 8, 8], "stem_width": 4},
                   "visual_kwargs": {"channels": [4, 8, 8, 8], "stem_width": 4}},
            train={"epochs": 3, "batch_size": 16, "eval_batch_size": 32, "img_size": 16, "optimizer": "sgd",
                   "lr": 0.05, "momentum": 0.0, "weight_decay": 0.0, "scheduler": "step", "warmup_epochs": 0,
                   "min_lr": 0.0, "label_smoothing": 0.0, "num_workers": 0, "seed": 3},
            probe={"every_steps": 5, "train_steps": 10, "n_train": 32, "n_eval": 16})


def _configs(balance: dict, **train):
    from fer_lib.tasks.av import av_configs

    return av_configs(TINY["data"], TINY["model"], {**TINY["train"], **train}, balance, TINY["probe"],
                      {"a": {"label": "A"}}, [0])["a", 0]


@pytest.fixture(scope="module")
def tiny_clips():
    from fer_lib.data.av_sources import load_av_dataset

    return load_av_dataset(TINY["data"])


def _run_recording_audio(tmp_path, tiny_clips, balance, monkeypatch):
    """Train one epoch; record after every step whether the audio encoder's weights changed."""
    from fer_lib.tasks import av

    changed, last = [], {}
    real = av.AVTask.after_step

    def spy(self, step):
        now = torch.cat([p.detach().flatten() for p in self.model.audio.parameters()])
        changed.append(bool(step > 1 and not torch.equal(now, last["w"])) if "w" in last else None)
        last["w"] = now.clone()
        return real(self, step)

    monkeypatch.setattr(av.AVTask, "after_step", spy)
    av.train_av(_configs(balance, epochs=1), RunStore(tmp_path), tiny_clips, progress=False)
    return changed


def test_frequency_k_updates_the_dominant_encoder_exactly_every_kth_step(tmp_path, monkeypatch, tiny_clips):
    changed = _run_recording_audio(tmp_path, tiny_clips, {"mode": "frequency", "k": 2, "dominant": "audio"},
                                   monkeypatch)
    # step s's record compares the weights after step s with those after step s-1 (from step 2 on)
    assert changed[1:] == [s % 2 == 0 for s in range(2, len(changed) + 1)]


def test_staleness_zero_equals_baseline_and_tau_changes_training(tmp_path, tiny_clips):
    from fer_lib.tasks.av import train_av

    base = train_av(_configs({"mode": "baseline"}, epochs=1), RunStore(tmp_path / "a"), tiny_clips, progress=False)
    tau0 = train_av(_configs({"mode": "staleness", "tau": 0}, epochs=1), RunStore(tmp_path / "b"), tiny_clips,
                    progress=False)
    tau2 = train_av(_configs({"mode": "staleness", "tau": 2}, epochs=1), RunStore(tmp_path / "c"), tiny_clips,
                    progress=False)
    from safetensors.torch import load_file

    wa, wb, wc = (load_file(r.file("weights.safetensors")) for r in (base, tau0, tau2))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa if k.startswith("audio."))


def test_probes_fit_on_training_clips_and_score_on_validation_clips(tmp_path, tiny_clips, monkeypatch):
    from fer_lib.tasks import av, balance

    seen = []
    real = balance.encoder_features

    def spy(model, dataset, idx, batch_size, device):
        seen.append((dataset, np.asarray(idx)))
        return real(model, dataset, idx, batch_size, device)

    monkeypatch.setattr(balance, "encoder_features", spy)
    run = av.train_av(_configs({"mode": "baseline"}, epochs=1), RunStore(tmp_path), tiny_clips, progress=False)
    assert len(seen) >= 2 and len(seen) % 2 == 0
    train_ids = {tuple(ds.clips.ids[i] for i in idx) for ds, idx in seen[0::2]}
    eval_ids = {tuple(ds.clips.ids[i] for i in idx) for ds, idx in seen[1::2]}
    for ds, _ in seen[0::2]:
        assert set(ds.clips.split) == {"train"}
    for ds, _ in seen[1::2]:
        assert set(ds.clips.split) == {"val"}
    assert not {i for t in train_ids for i in t} & {i for t in eval_ids for i in t}
    assert {"probe_audio", "probe_visual", "util_gap"} <= set(run.history.columns)


def test_fit_probe_is_deterministic_and_learns_a_separable_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] > 0).long()
    a = fit_probe(x[:100], y[:100], x[100:], y[100:], 2, steps=50, lr=0.05)
    assert a == fit_probe(x[:100], y[:100], x[100:], y[100:], 2, steps=50, lr=0.05) and a > 0.9


@pytest.mark.parametrize("mode", ["staleness", "ogm_ge", "adaptive"])
def test_resume_equals_uninterrupted(tmp_path, tiny_clips, monkeypatch, mode):
    from fer_lib.tasks import av

    bal = {"mode": mode, "tau": 2, "unimodal_weight": 1.0 if mode != "ogm_ge" else 0.0}
    full = av.train_av(_configs(bal), RunStore(tmp_path / "a"), tiny_clips, progress=False)
    real, calls = av.av_metrics, {"n": 0}

    def crash(*a, **k):  # av_metrics runs for test in end_epoch and for val in evaluate: die in epoch 2's evaluate
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(av, "av_metrics", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        av.train_av(_configs(bal), RunStore(tmp_path / "b"), tiny_clips, progress=False)
    monkeypatch.setattr(av, "av_metrics", real)
    resumed = av.train_av(_configs(bal), RunStore(tmp_path / "b"), tiny_clips, progress=False)
    from safetensors.torch import load_file

    wa, wb = load_file(full.file("weights.safetensors")), load_file(resumed.file("weights.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)
    cols = [c for c in full.history.columns if not c.endswith("seconds")]
    assert full.history[cols].equals(resumed.history[cols])


def test_av_config_errors_name_the_arm():
    from fer_lib.tasks.av import av_configs

    with pytest.raises(ConfigError, match="arms.a.balance.mode: expected one of baseline"):
        av_configs(TINY["data"], {}, TINY["train"], {}, {}, {"a": {"balance": {"mode": "fast"}}}, [0])
    with pytest.raises(ConfigError, match="arms.a.probe.enabled: the adaptive mode is driven by the probes"):
        av_configs(TINY["data"], {}, TINY["train"], {}, {}, {"a": {"balance": {"mode": "adaptive"},
                                                                   "probe": {"enabled": False}}}, [0])
    with pytest.raises(ConfigError, match="data.fer_root: required for source 'ravdess_fer'"):
        av_configs({"source": "ravdess_fer", "root": "x"}, {}, TINY["train"], {}, {}, {"a": {}}, [0])


def test_an_arms_own_seeds_replace_the_sections():
    from fer_lib.config import ConfigError
    from fer_lib.tasks.av import av_configs

    arms = {"baseline": {"seeds": [0, 1, 2]}, "freq": {"balance": {"mode": "frequency", "k": 2}}}
    cfgs = av_configs({"source": "synthetic"}, {}, {"epochs": 1}, {}, {}, arms, [0])
    assert sorted(cfgs) == [("baseline", 0), ("baseline", 1), ("baseline", 2), ("freq", 0)]
    assert cfgs["baseline", 2].train.seed == 2
    with pytest.raises(ConfigError, match="arms.freq.seeds"):
        av_configs({"source": "synthetic"}, {}, {"epochs": 1}, {}, {}, {"freq": {"seeds": [-1]}}, [0])
