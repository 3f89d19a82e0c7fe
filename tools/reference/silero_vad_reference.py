"""Silero VAD: the served weights and the reference outputs costream's parity tests compare with.

The model users get from the package (`load_silero_vad()`: `silero_vad.jit`, and the ONNX
exports) is not what the package's `silero_vad_16k.safetensors` holds: that file has other
weights (every tensor but the STFT basis differs). So this script

1. exports the `.jit`'s 16 kHz network to `crates/models/weights/silero_vad_16k.safetensors`,
   in the key layout of the package's safetensors file (`tinygrad_model.py`'s names), with the
   package's MIT licence beside it (`silero_vad.LICENSE`);
2. checks that a PyTorch transcription of `tinygrad_model.py`'s network, given those weights,
   equals the `.jit` chunk by chunk, and that tinygrad itself (`DEV=PYTHON`, when installed)
   agrees with the transcription on the package's own file;
3. writes `crates/models/tests/data/silero_vad.json` (a few KB): for each input, the `.jit`'s
   speech probability per 512-sample chunk (the model reset at the start, as
   `get_speech_timestamps` does), the transcription's probabilities with the package's own
   safetensors, the segments of `get_speech_timestamps` and the events of `VADIterator`, both
   with the package's defaults. Inputs: every WAV of Debian's `alsa-utils`
   (`/usr/share/sounds/alsa/*.wav`, 48 kHz speech and pink noise) read as the package's
   `read_audio` does (16-bit PCM / 32768, resampled to 16 kHz by torchaudio's default
   `Resample`), two seconds of silence, and white noise from a generator the Rust test
   reproduces (`white_noise` below);
4. writes `crates/models/tests/data/resample.safetensors` (tens of KB): a chirp at 48, 44.1
   and 8 kHz and torchaudio's default `Resample` of each to 16 kHz.

Run with PyTorch, torchaudio and silero-vad 6.2.3 installed (never in CI):

    pip install silero-vad==6.2.3 torchaudio safetensors
    python tools/reference/silero_vad_reference.py
"""

import importlib.resources
import json
import math
import pathlib
import shutil
import sys
import wave

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from safetensors.torch import load_file, save_file

import silero_vad
from silero_vad import VADIterator, get_speech_timestamps, load_silero_vad

ROOT = pathlib.Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "crates/models/weights/silero_vad_16k.safetensors"
LICENCE = ROOT / "crates/models/weights/silero_vad.LICENSE"
VECTORS = ROOT / "crates/models/tests/data/silero_vad.json"
RESAMPLE = ROOT / "crates/models/tests/data/resample.safetensors"
ALSA = pathlib.Path("/usr/share/sounds/alsa")

RATE = 16000
CHUNK = 512
CONTEXT = 64

# The `.jit`'s module paths → the package safetensors' (tinygrad_model.py's) key names.
JIT_TO_PACKAGE = {
    "_model.stft.forward_basis_buffer": "stft_conv.weight",
    **{
        f"_model.encoder.{i}.reparam_conv.{p}": f"conv{i + 1}.{p}"
        for i in range(4)
        for p in ("weight", "bias")
    },
    **{f"_model.decoder.rnn.{p}": f"lstm_cell.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "_model.decoder.decoder.2.weight": "final_conv.weight",
    "_model.decoder.decoder.2.bias": "final_conv.bias",
}


def package_file(name):
    return pathlib.Path(str(importlib.resources.files("silero_vad.data").joinpath(name)))


def export_jit_weights(jit):
    state = jit.state_dict()
    weights = {package: state[key].detach().clone().contiguous() for key, package in JIT_TO_PACKAGE.items()}
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        weights,
        str(WEIGHTS),
        metadata={
            "source": f"silero-vad {silero_vad.__version__}: silero_vad/data/silero_vad.jit, 16 kHz network",
            "exported_by": "tools/reference/silero_vad_reference.py",
        },
    )
    licence = pathlib.Path(silero_vad.__file__).parent.parent / f"silero_vad-{silero_vad.__version__}.dist-info/licenses/LICENSE"
    shutil.copyfile(licence, LICENCE)
    return weights


def network_step(weights, chunk_with_context, state):
    """tinygrad_model.py's TinySileroVAD.__call__ in PyTorch: one chunk (with its 64 samples
    of context) per row → (speech probability per row, new (h, c))."""
    x = F.pad(chunk_with_context, (0, 64), mode="reflect").unsqueeze(1)
    x = F.conv1d(x, weights["stft_conv.weight"], stride=128)
    cutoff = x.shape[1] // 2
    x = (x[:, :cutoff] ** 2 + x[:, cutoff:] ** 2).sqrt()
    for i, stride in ((1, 1), (2, 2), (3, 2), (4, 1)):
        x = F.conv1d(x, weights[f"conv{i}.weight"], weights[f"conv{i}.bias"], stride=stride, padding=1).relu()
    x = x.squeeze(-1)
    h, c = torch._VF.lstm_cell(
        x, state, weights["lstm_cell.weight_ih"], weights["lstm_cell.weight_hh"], weights["lstm_cell.bias_ih"], weights["lstm_cell.bias_hh"]
    )
    out = F.conv1d(h.unsqueeze(-1).relu(), weights["final_conv.weight"], weights["final_conv.bias"]).sigmoid()
    return out.squeeze(1).mean(dim=1), (h, c)


def chunks(audio):
    """The audio cut as get_speech_timestamps cuts it: 512-sample chunks, the last zero-padded."""
    for start in range(0, len(audio), CHUNK):
        chunk = audio[start : start + CHUNK]
        yield F.pad(chunk, (0, CHUNK - len(chunk)))


def jit_probabilities(jit, audio):
    jit.reset_states()
    return [jit(chunk, RATE).item() for chunk in chunks(audio)]


def transcription_probabilities(weights, audio):
    context = torch.zeros(1, CONTEXT)
    state = (torch.zeros(1, 128), torch.zeros(1, 128))
    probabilities = []
    for chunk in chunks(audio):
        x = torch.cat([context, chunk[None]], dim=1)
        p, state = network_step(weights, x, state)
        context = x[:, -CONTEXT:]
        probabilities.append(p.item())
    return probabilities


def tinygrad_probabilities(audio, limit):
    """tinygrad_model.py itself on the package's safetensors, the first `limit` chunks; None
    when tinygrad is not installed."""
    try:
        import os

        os.environ.setdefault("DEV", "PYTHON")
        sys.path.insert(0, str(pathlib.Path(silero_vad.__file__).parent))
        from tinygrad import Tensor
        from tinygrad.nn.state import load_state_dict, safe_load
        from tinygrad_model import TinySileroVAD
    except ImportError:
        return None
    model = TinySileroVAD()
    load_state_dict(model, safe_load(str(package_file("silero_vad_16k.safetensors"))))
    wav = F.pad(audio, (CONTEXT, 0)).numpy()
    state, out = None, []
    for i in range(CONTEXT, CONTEXT + limit * CHUNK, CHUNK):
        p, state = model(Tensor(wav[None, i - CONTEXT : i + CHUNK]), state)
        out.append(float(p.numpy()[0, 0]))
    return out


def read_wav(path):
    """read_audio's decoding: 16-bit PCM as value / 32768, channels averaged, resampled to
    16 kHz by torchaudio's default Resample."""
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2, path
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        rate = w.getframerate()
    audio = torch.from_numpy(pcm.astype(np.float32) / 32768.0).T.mean(dim=0, keepdim=True)
    if rate != RATE:
        audio = torchaudio.transforms.Resample(rate, RATE)(audio)
    return audio[0], rate


def white_noise(samples, seed, amplitude):
    """Uniform noise in [-amplitude, amplitude): a 64-bit LCG (Knuth's MMIX constants), the top
    24 bits of each state as the unit value. crates/models/tests reproduces it."""
    state = seed
    out = np.empty(samples, dtype=np.float32)
    for i in range(samples):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        unit = (state >> 40) / float(1 << 24)
        out[i] = np.float32((2.0 * unit - 1.0) * amplitude)
    return torch.from_numpy(out)


def iterator_events(jit, audio):
    iterator = VADIterator(jit)
    events = []
    for chunk in chunks(audio):
        event = iterator(chunk)
        if event:
            events.append(event)
    return events


def main():
    jit = load_silero_vad()
    exported = export_jit_weights(jit)
    package = load_file(str(package_file("silero_vad_16k.safetensors")))

    inputs = [(f"alsa/{path.name}", *read_wav(path)) for path in sorted(ALSA.glob("*.wav"))]
    if not inputs:
        sys.exit(f"no WAVs under {ALSA}: install alsa-utils")
    inputs.append(("silence", torch.zeros(2 * RATE), RATE))
    inputs.append(("white_noise", white_noise(2 * RATE, seed=2026, amplitude=0.1), RATE))

    cases = []
    worst = 0.0
    for name, audio, source_rate in inputs:
        jit_probs = jit_probabilities(jit, audio)
        ours = transcription_probabilities(exported, audio)
        worst = max(worst, max(abs(a - b) for a, b in zip(jit_probs, ours)))
        cases.append(
            {
                "name": name,
                "source_rate": source_rate,
                "samples": len(audio),
                "probabilities": jit_probs,
                "package_safetensors_probabilities": transcription_probabilities(package, audio),
                "speech_timestamps": get_speech_timestamps(audio, jit, sampling_rate=RATE),
                "iterator_events": iterator_events(jit, audio),
            }
        )
    print(f"transcription with the exported weights vs the .jit: max |Δp| = {worst:.2e}")
    assert worst < 1e-5, worst

    speech = cases[0]
    tiny = tinygrad_probabilities(read_wav(ALSA / speech["name"].split("/")[1])[0], limit=6)
    if tiny is None:
        print("tinygrad not installed: the transcription was not checked against tinygrad_model.py")
    else:
        gap = max(abs(a - b) for a, b in zip(tiny, speech["package_safetensors_probabilities"]))
        print(f"tinygrad_model.py vs the transcription on the package's safetensors: max |Δp| = {gap:.2e}")
        assert gap < 1e-5, gap

    VECTORS.parent.mkdir(parents=True, exist_ok=True)
    VECTORS.write_text(
        json.dumps(
            {
                "source": f"silero-vad {silero_vad.__version__}, torch {torch.__version__}, "
                f"torchaudio {torchaudio.__version__}; tools/reference/silero_vad_reference.py",
                "sample_rate": RATE,
                "chunk": CHUNK,
                "white_noise": {"seed": 2026, "amplitude": 0.1, "samples": 2 * RATE},
                "cases": cases,
            },
            indent=1,
        )
        + "\n"
    )

    resample = {}
    for rate in (48000, 44100, 8000):
        n = rate // 10
        seconds = torch.arange(n, dtype=torch.float64) / rate
        chirp = (0.5 * torch.sin(2 * math.pi * (200 * seconds + 0.5 * 7000 * seconds**2 / 0.1))).float()
        resample[f"from_{rate}.input"] = chirp.contiguous()
        resample[f"from_{rate}.output"] = torchaudio.transforms.Resample(rate, RATE)(chirp[None])[0].contiguous()
    save_file(resample, str(RESAMPLE))
    print(f"wrote {WEIGHTS}, {VECTORS}, {RESAMPLE}")


if __name__ == "__main__":
    main()
