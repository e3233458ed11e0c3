// The setup form: persona presets, voice and sampling, and the query a conversation starts with.
import { ui } from "./view.js";

export function fillForm(config) {
  const defaults = config.defaults;
  ui.prompt.value = defaults.text_prompt;
  for (const voice of config.voices) ui.voice.add(new Option(voice, voice));
  ui.voice.value = defaults.voice_prompt;
  ui.temperature.value = defaults.temperature;
  ui.temperatureText.value = defaults.temperature_text;
  ui.topK.value = defaults.top_k;
  for (const persona of config.personas) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.textContent = persona.name;
    chip.title = persona.text_prompt;
    chip.addEventListener("click", () => {
      ui.prompt.value = persona.text_prompt;
      markPersona();
    });
    chip.dataset.prompt = persona.text_prompt;
    ui.personas.append(chip);
  }
  markPersona();
  ui.version.textContent = config.version ? `version ${config.version}` : "";
}

/** The preset whose prompt the text box holds shows as pressed; an edited prompt matches none. */
export function markPersona() {
  for (const chip of ui.personas.querySelectorAll(".chip")) {
    chip.setAttribute("aria-pressed", String(chip.dataset.prompt === ui.prompt.value));
  }
}

export function chatQuery() {
  const query = new URLSearchParams({
    text_prompt: ui.prompt.value,
    voice_prompt: ui.voice.value,
    temperature: ui.temperature.value,
    temperature_text: ui.temperatureText.value,
    top_k: ui.topK.value,
  });
  if (ui.seed.value.trim() !== "") query.set("seed", ui.seed.value.trim());
  return query;
}
