// The asr page: upload or record audio, POST it to /transcribe, show the words and light
// each one up while the audio plays. Plain browser APIs only; nothing from the network.
"use strict";

const $ = (id) => document.getElementById(id);
const status = $("status"), transcript = $("transcript"), player = $("player"), details = $("details");
let recorder = null, chunks = [], words = [];

function say(text, isError = false) {
  status.textContent = text;
  status.className = isError ? "error" : "";
}

let playing = null;  // the object URL the player holds, released when the next one comes

async function transcribe(blob, name) {
  if (playing) URL.revokeObjectURL(playing);
  playing = player.src = URL.createObjectURL(blob);
  player.hidden = false;
  transcript.textContent = "";
  details.textContent = "";
  say(`Transcribing ${name}…`);
  const form = new FormData();
  form.append("file", blob, name);
  const timestamps = $("timestamps").checked;
  let response, body;
  try {
    response = await fetch(`/transcribe?timestamps=${timestamps}`, { method: "POST", body: form });
    body = await response.json();
  } catch (e) {
    say(`The server could not be reached (${e}).`, true);
    return;
  }
  if (!response.ok) {
    say(body.error || `Error ${response.status}`, true);
    return;
  }
  show(body);
  say(body.text ? "Done." : "No speech was recognized.");
}

function show(result) {
  words = result.words || [];
  transcript.textContent = "";
  if (words.length) {
    words.forEach((w, i) => {
      const span = document.createElement("span");
      span.className = "word";
      span.textContent = w.word;
      span.dataset.index = i;
      span.title = `${w.start.toFixed(2)}–${w.end.toFixed(2)} s`;
      span.addEventListener("click", () => { player.currentTime = w.start; player.play(); });
      transcript.append(span, " ");
    });
  } else {
    transcript.textContent = result.text;
  }
  details.textContent = `${result.duration.toFixed(1)} s of audio, processed in ${result.processing_seconds.toFixed(2)} s`;
}

player.addEventListener("timeupdate", () => {
  const t = player.currentTime;
  transcript.querySelectorAll(".word").forEach((span) => {
    const w = words[Number(span.dataset.index)];
    span.classList.toggle("active", t >= w.start && t <= w.end + 0.05);
  });
});

$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) transcribe(file, file.name);
});

// Recording: MediaRecorder captures the microphone (as WebM/Opus in Chromium, which the
// server's audio reader does not take), so the recording is decoded by the browser and sent
// as a 16-bit mono 16 kHz WAV file.
$("record").addEventListener("click", async () => {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    say(`No microphone (${e.message || e}).`, true);
    return;
  }
  chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    const recorded = new Blob(chunks, { type: recorder.mimeType });
    try {
      transcribe(await toWav(recorded), "recording.wav");
    } catch (e) {
      say(`The recording could not be decoded (${e.message || e}).`, true);
    }
  };
  recorder.start();
  $("record").disabled = true;
  $("stop").disabled = false;
  say("Recording… press Stop when done.");
});

$("stop").addEventListener("click", () => {
  if (recorder && recorder.state !== "inactive") recorder.stop();
  $("record").disabled = false;
  $("stop").disabled = true;
});

// The recording at 16 kHz mono (what the model takes; a third of a 48 kHz file's size).
async function toWav(blob, rate = 16000) {
  const context = new AudioContext();
  const decoded = await context.decodeAudioData(await blob.arrayBuffer());
  await context.close();
  const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * rate)), rate);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const audio = await offline.startRendering();
  const samples = audio.getChannelData(0);
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, audio.sampleRate, true); view.setUint32(28, audio.sampleRate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return new Blob([buffer], { type: "audio/wav" });
}
