// The live page's microphone tap: an AudioWorklet processor that hands each block of the
// first input channel (128 samples at the audio context's rate) to the page, which cuts the
// blocks into the model's chunks.
'use strict';

class MicrophoneTap extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0]?.[0];
    if (channel) this.port.postMessage(channel.slice());
    return true;
  }
}

registerProcessor('microphone-tap', MicrophoneTap);
