// The costream live page: streams the camera or a video file to /v1/stream, one JPEG per
// video frame in the protocol's JSON form (docs/protocol.md), and shows each frame's
// prediction: the label, confidence bars of the top classes, a timeline and the latency. For a
// voice activity model it streams the microphone instead, one chunk of 16-bit PCM per frame at
// the model's rate, and shows the speech probability and the speech segments found.
'use strict';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), model: $('model'), camera: $('start-camera'), file: $('file'),
  microphone: $('start-microphone'), voice: $('voice'),
  stop: $('stop'), key: $('api-key'), video: $('video'), source: $('source'),
  label: $('label'), confidence: $('confidence'), bars: $('bars'), latency: $('latency'),
  serverTime: $('server-time'), frames: $('frames'), fps: $('fps'),
  timeline: $('timeline'), legend: $('legend'),
};

/** Labels shown per prediction. */
const TOP_K = 5;
/** Frames sent and not yet answered at most; a camera frame beyond it is not sent. */
const MAX_IN_FLIGHT = 4;
const JPEG_QUALITY = 0.85;
/** Timeline column width in canvas pixels. */
const COLUMN = 4;
/** Answers the latency median is taken over. */
const LATENCY_WINDOW = 50;

/** The models `GET /v1/models` listed that take video frames or audio. */
let models = [];
/** The stream running now, if any. */
let session = null;
/** The microphone, while a voice activity stream runs. */
let microphone = null;

function setStatus(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', isError);
}

/** `path` with the API key, when one is entered, as the `access_token` query parameter. */
function withKey(path) {
  const key = ui.key.value.trim();
  if (!key) return path;
  return `${path}${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(key)}`;
}

/** A class's colour: hues a golden angle apart. */
function classColour(index, alpha = 1) {
  return `hsla(${(index * 137.508) % 360}, 65%, 48%, ${alpha})`;
}

const percent = (score) => `${(100 * score).toFixed(1)}%`;
const millis = (micros) => Number(micros || 0) / 1000;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function loadModels() {
  try {
    const response = await fetch(withKey('/v1/models'));
    if (response.status === 401) {
      setStatus('this server needs an API key: enter it above', true);
      return;
    }
    if (!response.ok) throw new Error(`GET /v1/models answered ${response.status}`);
    const body = await response.json();
    models = body.models.filter((m) => m.input.startsWith('video') || isAudio(m));
    ui.model.replaceChildren(...models.map((m, i) => new Option(isAudio(m)
      ? `${m.name} (voice activity, ${m.sample_rate / 1000} kHz, ${m.device})`
      : `${m.name} (${m.classes} classes, ${m.device})`, String(i))));
    if (models.length === 0) {
      setStatus('this server serves no video or audio model', true);
      return;
    }
    showSources();
  } catch (e) {
    setStatus(`cannot list the models: ${e.message}`, true);
  }
}

/** Whether `model` takes audio (one chunk of samples per frame). */
function isAudio(model) {
  return model.input.startsWith('audio');
}

/** The source buttons the selected model takes: camera and file, or the microphone. */
function showSources() {
  const model = models[Number(ui.model.value)];
  if (!model) return;
  const audio = isAudio(model);
  ui.camera.hidden = audio;
  ui.file.parentElement.hidden = audio;
  ui.microphone.hidden = !audio;
  ui.voice.hidden = !audio;
  setStatus(audio ? 'pick the microphone' : 'pick the camera or a video file');
}

/** 16-bit little-endian PCM of float samples, as base64 (`audio.pcm16`). */
function pcm16Base64(samples) {
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  samples.forEach((x, i) => {
    view.setInt16(2 * i, Math.max(-32768, Math.min(32767, Math.round(x * 32768))), true);
  });
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** The microphone at `rate` samples per second, cut into chunks of `chunk` for `onChunk`. */
class Microphone {
  static async open(rate, chunk, onChunk) {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false,
        autoGainControl: false },
      video: false,
    });
    const context = new AudioContext({ sampleRate: rate });
    try {
      await context.audioWorklet.addModule('/demo/microphone.js');
    } catch (e) {
      stream.getTracks().forEach((track) => track.stop());
      await context.close();
      throw e;
    }
    const tap = new AudioWorkletNode(context, 'microphone-tap');
    const pending = new Float32Array(chunk);
    let filled = 0;
    tap.port.onmessage = (event) => {
      for (const x of event.data) {
        pending[filled++] = x;
        if (filled === chunk) {
          onChunk(pending.slice());
          filled = 0;
        }
      }
    };
    context.createMediaStreamSource(stream).connect(tap);
    return new Microphone(stream, context, tap);
  }

  constructor(stream, context, tap) {
    this.stream = stream;
    this.context = context;
    this.tap = tap;
  }

  label() {
    return this.stream.getAudioTracks()[0]?.label || 'default';
  }

  close() {
    this.tap.port.onmessage = null;
    this.stream.getTracks().forEach((track) => track.stop());
    this.context.close();
  }
}

/** One stream: a WebSocket, the frames in flight, and what the page shows of its answers. */
class Session {
  constructor(model, sourceName) {
    this.model = model;
    this.sourceName = sourceName;
    this.seq = 0;
    this.sentAt = new Map();
    this.sent = 0;
    this.answered = 0;
    this.latencies = [];
    this.answerTimes = [];
    this.history = [];
    this.seen = new Map();
    this.inFlightLimit = MAX_IN_FLIGHT;
    this.audio = isAudio(model);
    /** Speech segments found so far, `[start, end]` in seconds (end null while in speech). */
    this.speech = [];
    this.delay = 0;
    this.streaming = false;
    this.ended = false;
    this.canvas = document.createElement('canvas');
    this.context = this.canvas.getContext('2d');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.socket = new WebSocket(withKey(`${scheme}//${location.host}/v1/stream`));
    this.socket.onopen = () => this.socket.send(JSON.stringify({
      start: { model: model.name, options: { topK: Math.min(TOP_K, model.classes) } },
    }));
    this.socket.onmessage = (event) => this.onMessage(JSON.parse(event.data));
    this.socket.onclose = (event) => this.onClose(event);
  }

  onMessage(message) {
    if (message.ready) {
      const ready = message.ready;
      this.delay = ready.delay || 0;
      const limit = Number(ready.limits?.maxPendingFrames || MAX_IN_FLIGHT);
      this.inFlightLimit = Math.max(1, Math.min(MAX_IN_FLIGHT, limit));
      this.streaming = true;
      setStatus(`streaming ${this.sourceName} to ${ready.model} as stream ${ready.streamId}`);
      // Audio chunks come from the microphone as they fill (`sendAudio`).
      if (!this.audio) this.scheduleCapture();
    } else if (message.prediction) {
      this.onPrediction(message.prediction);
    } else if (message.filling) {
      this.answer(message.filling.seq);
      ui.label.textContent = 'filling…';
      ui.confidence.textContent = `${Math.min(this.answered, this.delay)} / ${this.delay} frames`;
    } else if (message.skipped) {
      this.answer(message.skipped.seq);
    } else if (message.waiting) {
      setStatus(`every slot is taken: waiting, position ${message.waiting.position || 0}`);
    } else if (message.active) {
      setStatus(`streaming ${this.sourceName} to ${this.model.name}`);
    } else if (message.error) {
      const error = message.error;
      if (error.seq !== undefined) this.answer(error.seq);
      setStatus(`${error.code}: ${error.message}`, true);
      if (error.fatal) this.stop(false);
    } else if (message.goAway) {
      setStatus(`the server is draining: ${message.goAway.reason}`, true);
    } else if (message.summary) {
      const s = message.summary;
      setStatus(`stream ended (${s.reason}): ${s.predicted || 0} predictions for `
        + `${s.framesIn || 0} frames`);
    }
  }

  onClose(event) {
    const wasStreaming = !this.ended;
    this.stop(false);
    if (wasStreaming) {
      setStatus(`the connection closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`,
        event.code !== 1000);
    }
  }

  /** Asks for a capture at the next video frame (or in 40 ms where that is not supported). */
  scheduleCapture() {
    if (this.ended) return;
    if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
      ui.video.requestVideoFrameCallback(() => this.capture());
    } else {
      setTimeout(() => this.capture(), 40);
    }
  }

  capture() {
    if (this.ended) return;
    if (this.sentAt.size < this.inFlightLimit && ui.video.videoWidth > 0) this.sendFrame();
    this.scheduleCapture();
  }

  /** Encodes the video's current frame as JPEG, at twice the model's input size at most. */
  sendFrame() {
    const { videoWidth: w, videoHeight: h } = ui.video;
    const side = 2 * Math.max(this.model.frame_shape[1], this.model.frame_shape[2]);
    const scale = Math.min(1, side / Math.min(w, h));
    this.canvas.width = Math.max(1, Math.round(w * scale));
    this.canvas.height = Math.max(1, Math.round(h * scale));
    this.context.drawImage(ui.video, 0, 0, this.canvas.width, this.canvas.height);
    const jpeg = this.canvas.toDataURL('image/jpeg', JPEG_QUALITY);
    const seq = this.seq++;
    this.sentAt.set(seq, performance.now());
    this.socket.send(JSON.stringify({
      frame: { seq: String(seq), pts: String(Math.round(performance.now() * 1000)),
        encoded: jpeg.slice(jpeg.indexOf(',') + 1) },
    }));
    this.sent += 1;
    this.showCounts();
  }

  /** Sends one chunk of audio samples (once the stream is ready; earlier chunks are dropped). */
  sendAudio(samples) {
    if (!this.streaming || this.ended) return;
    const seq = this.seq++;
    this.sentAt.set(seq, performance.now());
    this.socket.send(JSON.stringify({
      frame: { seq: String(seq), pts: String(Math.round(performance.now() * 1000)),
        audio: { sampleRate: this.model.sample_rate, pcm16: pcm16Base64(samples) } },
    }));
    this.sent += 1;
    this.showCounts();
  }

  /** Follows the speech starts and ends of a voice activity prediction. */
  onVoice(voice) {
    const seconds = (samples) => Number(samples) / this.model.sample_rate;
    if (voice.speechStart !== undefined) this.speech.push([seconds(voice.speechStart), null]);
    const open = this.speech[this.speech.length - 1];
    if (voice.speechEnd !== undefined && open && open[1] === null) open[1] = seconds(voice.speechEnd);
    const shown = this.speech.slice(-6).map(([start, end]) => (end === null
      ? `${start.toFixed(2)} s – …` : `${start.toFixed(2)}–${end.toFixed(2)} s`));
    ui.voice.textContent = `${voice.inSpeech ? 'speaking' : 'silent'}; speech segments: `
      + `${this.speech.length} (${shown.join(', ') || 'none yet'})`;
  }

  /** Marks frame `seq` answered; its round trip in milliseconds. */
  answer(seq) {
    const key = Number(seq || 0);
    const sentAt = this.sentAt.get(key);
    this.sentAt.delete(key);
    this.answered += 1;
    const now = performance.now();
    this.answerTimes.push(now);
    while (this.answerTimes[0] < now - 1000) this.answerTimes.shift();
    this.showCounts();
    return sentAt === undefined ? undefined : now - sentAt;
  }

  showCounts() {
    ui.frames.textContent = `${this.sent} / ${this.answered}`;
    ui.fps.textContent = String(this.answerTimes.length);
  }

  onPrediction(prediction) {
    const roundTrip = this.answer(prediction.seq);
    const top = prediction.topK || [];
    if (top.length === 0) return;
    const best = top[0];
    if (prediction.voice) {
      this.onVoice(prediction.voice);
      ui.label.textContent = prediction.voice.inSpeech ? 'speech' : 'no speech';
    } else {
      ui.label.textContent = best.label;
    }
    ui.confidence.textContent = percent(best.score);
    ui.bars.replaceChildren(...top.map((entry) => {
      const item = document.createElement('li');
      const name = document.createElement('span');
      name.textContent = entry.label;
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fill = document.createElement('i');
      fill.style.width = percent(entry.score);
      fill.style.background = classColour(entry.index || 0);
      bar.append(fill);
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = percent(entry.score);
      item.append(name, bar, score);
      return item;
    }));
    if (roundTrip !== undefined) {
      this.latencies.push(roundTrip);
      if (this.latencies.length > LATENCY_WINDOW) this.latencies.shift();
      ui.latency.textContent = `${roundTrip.toFixed(1)} ms (median ${median(this.latencies)
        .toFixed(1)} ms)`;
    }
    ui.serverTime.textContent = `${millis(prediction.queueUs).toFixed(2)} + `
      + `${millis(prediction.computeUs).toFixed(2)} ms, batch of ${prediction.batchSize || 1}`;
    this.history.push({ index: best.index || 0, score: best.score });
    if (!this.seen.has(best.index || 0)) {
      this.seen.set(best.index || 0, best.label);
      this.drawLegend();
    }
    this.drawTimeline();
  }

  drawTimeline() {
    const canvas = ui.timeline;
    const context = canvas.getContext('2d');
    const columns = Math.floor(canvas.width / COLUMN);
    if (this.history.length > columns) this.history.splice(0, this.history.length - columns);
    context.clearRect(0, 0, canvas.width, canvas.height);
    const left = canvas.width - this.history.length * COLUMN;
    this.history.forEach((entry, i) => {
      context.fillStyle = classColour(entry.index, 0.25 + 0.75 * entry.score);
      context.fillRect(left + i * COLUMN, 0, COLUMN, canvas.height);
    });
  }

  drawLegend() {
    ui.legend.replaceChildren(...[...this.seen].sort((a, b) => a[0] - b[0]).map(([index, label]) => {
      const item = document.createElement('li');
      const swatch = document.createElement('i');
      swatch.style.background = classColour(index);
      item.append(swatch, label);
      return item;
    }));
  }

  /** Stops capturing; with `sendEnd`, ends the stream (the server answers a summary). */
  stop(sendEnd = true) {
    if (this.ended) return;
    this.ended = true;
    if (sendEnd && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ end: {} }));
    }
    stopSource();
  }
}

function stopSource() {
  microphone?.close();
  microphone = null;
  ui.microphone.disabled = false;
  const stream = ui.video.srcObject;
  if (stream) stream.getTracks().forEach((track) => track.stop());
  ui.video.pause();
  ui.video.srcObject = null;
  ui.camera.disabled = false;
  ui.file.disabled = false;
  ui.stop.disabled = true;
}

function selectedModel() {
  const model = models[Number(ui.model.value)];
  if (!model) setStatus('no model to stream to', true);
  return model;
}

/** Starts a stream of what `ui.video` plays, named `sourceName`. */
async function startStream(sourceName) {
  const model = selectedModel();
  if (!model) return;
  if (session) session.stop();
  ui.camera.disabled = true;
  ui.file.disabled = true;
  ui.microphone.disabled = true;
  ui.stop.disabled = false;
  ui.source.textContent = sourceName;
  ui.label.textContent = '–';
  ui.confidence.textContent = '';
  ui.voice.textContent = '';
  ui.bars.replaceChildren();
  ui.legend.replaceChildren();
  if (!isAudio(model)) await ui.video.play();
  session = new Session(model, sourceName);
}

ui.camera.addEventListener('click', async () => {
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus('the camera needs a secure page: open it over https or on localhost', true);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
    });
    ui.video.removeAttribute('src');
    ui.video.srcObject = stream;
    await startStream(`camera “${stream.getVideoTracks()[0]?.label || 'default'}”`);
  } catch (e) {
    stopSource();
    setStatus(`no camera: ${e.message}`, true);
  }
});

ui.file.addEventListener('change', async () => {
  const file = ui.file.files[0];
  if (!file) return;
  ui.video.srcObject = null;
  ui.video.src = URL.createObjectURL(file);
  try {
    await startStream(`file “${file.name}”`);
  } catch (e) {
    stopSource();
    setStatus(`cannot play ${file.name}: ${e.message}`, true);
  }
});

ui.microphone.addEventListener('click', async () => {
  const model = selectedModel();
  if (!model) return;
  if (!navigator.mediaDevices?.getUserMedia || !window.AudioWorkletNode) {
    setStatus('the microphone needs a secure page: open it over https or on localhost', true);
    return;
  }
  try {
    if (session) session.stop();
    microphone = await Microphone.open(model.sample_rate, model.chunk_samples,
      (chunk) => session?.sendAudio(chunk));
    await startStream(`microphone “${microphone.label()}”`);
  } catch (e) {
    stopSource();
    setStatus(`no microphone: ${e.message}`, true);
  }
});

ui.model.addEventListener('change', showSources);
ui.video.addEventListener('ended', () => session?.stop());
ui.stop.addEventListener('click', () => session?.stop());
ui.key.addEventListener('change', loadModels);
loadModels();
