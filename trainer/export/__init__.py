"""Export an adapter out of the project: a merged HF model, GGUF (+ a quantized copy), a llama.cpp
LoRA, an Ollama Modelfile and the persona's SillyTavern card (`python -m trainer export`)."""
