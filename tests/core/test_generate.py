import json

from core.generate import reply_text
from core import registry


def test_reply_text_drops_own_label_and_cuts_invented_speakers(persona):
    assert reply_text("Inosuke: HAH! Fight me!", persona) == "HAH! Fight me!"
    assert reply_text("Tempura!\nMore tempura!\nYou: ok\nInosuke: again", persona) == "Tempura!\nMore tempura!"
    assert reply_text("Monitsu is loud!\nZenitsu: I am NOT!", persona) == "Monitsu is loud!"
    assert reply_text("Rule one: WIN!", persona) == "Rule one: WIN!"  # not a speaker: lowercase word


def test_registry_numbers_versions_and_ignores_half_written_ones(tmp_path):
    first = registry.staging_dir(tmp_path)
    (first / "adapter_model.safetensors").write_bytes(b"x")
    v1 = registry.publish(first, {"base_model": "m"}, tmp_path)
    abandoned = registry.staging_dir(tmp_path)  # a training killed while writing its adapter
    (abandoned / "adapter_model.safetensors").write_bytes(b"half")
    second = registry.staging_dir(tmp_path)
    v2 = registry.publish(second, {"base_model": "m"}, tmp_path)
    assert [p.name for p in registry.versions(tmp_path)] == ["v0001", "v0002"] == [v1.name, v2.name]
    assert json.loads((v2 / "manifest.json").read_text())["version"] == "v0002"
    assert abandoned.exists() and abandoned not in registry.versions(tmp_path)


def test_a_batch_is_padded_while_other_threads_tokenize(tokenizer):
    """The bot tokenizes context windows on other threads while the worker encodes a batch; a
    fast tokenizer's padding setting is shared state, so a batch encoded with padding=True
    sometimes came out unpadded and the generation failed (up to a few in a hundred batches, before the fix; generate() now encodes each prompt alone)."""
    import threading
    import time

    from core.generate import generate
    from tests.fakes import FakeLanguageModel

    model, stop, failures = FakeLanguageModel(tokenizer), threading.Event(), []

    def count_tokens():  # what fit_prompt does, on the pipeline's threads
        while not stop.is_set():
            tokenizer("a short turn", add_special_tokens=False)
            time.sleep(0.0005)  # as the pipeline does between turns; a tight loop starves this thread of the GIL

    threads = [threading.Thread(target=count_tokens) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(400):  # the race hit a few batches in a hundred
            try:
                [short, long] = generate(model, tokenizer, ["hi", "hello " * 40], 32)
                assert short.text == long.text == model.reply
            except Exception as exc:
                failures.append(exc)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
