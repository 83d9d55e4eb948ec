import subprocess
import sys

import pytest

from core.errors import UserError
from core.paths import PROJECT_ROOT
from trainer.plan import GIB, Architecture, estimate, model_config
from trainer.profile import PROFILES_DIR, load_profile


def test_every_profile_loads_and_every_key_is_commented():
    for name in ("smollm2-cpu", "smollm2-cpu-quality", "qwen2.5-3b-6gb"):
        profile = load_profile(name)
        assert profile.name == name and profile.quantization == "nf4" and profile.lora.target_modules == "all-linear"
        text = (PROFILES_DIR / f"{name}.yaml").read_text()
        assert f"Run as: python -m trainer train --profile {name}" in text
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
                assert "#" in line, f"{name}: uncommented key: {line}"
    assert load_profile("qwen2.5-3b-6gb").model == "Qwen/Qwen2.5-3B-Instruct"
    # The quality profile is the demo's recipe trained for at least one full epoch, not a step count.
    demo, quality = load_profile("smollm2-cpu"), load_profile("smollm2-cpu-quality")
    assert quality.max_steps == -1 and quality.epochs >= 1 and demo.max_steps > 0
    differ = {"name": "", "max_steps": 0, "epochs": 0, "eval_every": 0, "learning_rate": 0, "max_seq_len": 0}
    assert quality.to_dict() | differ == demo.to_dict() | differ


def test_a_profile_extends_another_and_states_only_what_differs(tmp_path):
    """`extends:` starts from another profile (by name, or by a path relative to the file); a
    section is merged key by key; overrides still apply last; a loop or a bad value is one line."""
    (tmp_path / "short.yaml").write_text("extends: smollm2-cpu\nmax_steps: 8\nlora:\n  r: 4\n")
    (tmp_path / "shorter.yaml").write_text("extends: short.yaml\nlearning_rate: 1.0e-3\n")
    demo = load_profile("smollm2-cpu")
    shorter = load_profile(str(tmp_path / "shorter.yaml"), ["eval_every=4"])
    assert (shorter.name, shorter.max_steps, shorter.learning_rate, shorter.eval_every) == ("shorter", 8, 1e-3, 4)
    assert shorter.lora.r == 4 and shorter.lora.alpha == demo.lora.alpha and shorter.lora.dropout == demo.lora.dropout
    assert (shorter.model, shorter.max_seq_len, shorter.optimizer) == (demo.model, demo.max_seq_len, demo.optimizer)
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    (tmp_path / "named.yaml").write_text("extends: smollm2-cpu\nname: parent-name\n")
    (tmp_path / "child.yaml").write_text("extends: named.yaml\n")
    assert load_profile(str(tmp_path / "child.yaml")).name == "child"  # a name is not inherited
    (tmp_path / "folder.yaml").mkdir()
    for text, message in [(None, "b.yaml: extends: a.yaml: a loop (a.yaml -> b.yaml -> a.yaml)"),
                          ("extends: [smollm2-cpu]\n", "extends: expected a profile name or a path to a YAML file"),
                          ("extends:\n", "extends: expected a profile name or a path to a YAML file, got None"),
                          ("extends: nosuch\n", "extends: unknown profile 'nosuch'"),
                          ("extends: folder.yaml\n", "folder.yaml: is a folder, not a YAML file")]:
        if text is not None:
            (tmp_path / "a.yaml").write_text(text)
        with pytest.raises(UserError) as error:
            load_profile(str(tmp_path / "a.yaml"))
        assert message in str(error.value)


def test_overrides_are_typed():
    profile = load_profile("smollm2-cpu", ["max_steps=7", "lora.r=4", "learning_rate=1e-3", "eval_max_samples=null"])
    assert (profile.max_steps, profile.lora.r, profile.learning_rate, profile.eval_max_samples) == (7, 4, 1e-3, None)


@pytest.mark.parametrize(
    "override, message",
    [
        ("lora.rank=8", "unknown key 'lora.rank' (known keys: lora.r, lora.alpha, lora.dropout, lora.target_modules)"),
        ("max_stepz=3", "unknown key 'max_stepz'"),
        ("batch_size=two", "batch_size: expected int, got 'two'"),
        ("prompt_format=xml", "prompt_format: 'xml' is not one of 'chat', 'alpaca'"),
        ("lora.dropout=1.5", "lora.dropout: must be in [0, 1), got 1.5"),
        ("eval_every=0", "eval_every: must be at least 1, got 0"),
        # Values that would only fail (or train nonsense) deep inside a training run:
        ("learning_rate=nan", "learning_rate: expected a finite number, got nan"),
        ("epochs=.inf", "epochs: expected a finite number, got inf"),
        ("max_grad_norm=nan", "max_grad_norm: expected a finite number, got nan"),
        ("warmup_ratio=-5", "warmup_ratio: must be at least 0, got -5.0"),
        ("lora.alpha=-3", "lora.alpha: must be at least 1, got -3"),
        ("eval_max_samples=-3", "eval_max_samples: must be at least 1, got -3"),
        ("max_steps=-7", "max_steps: must be at least -1, got -7"),
        ("lora.target_modules=[]", "lora.target_modules: name at least one module, or all-linear"),
    ],
)
def test_bad_profile_keys_name_the_key(override, message):
    with pytest.raises(UserError) as error:
        load_profile("smollm2-cpu", [override])
    assert message in str(error.value)


@pytest.mark.parametrize("override, message", [
    ("kto.batch_size=0", "kto.batch_size: must be at least 1, got 0"),
    ("kto.learning_rate=-1", "kto.learning_rate: must be at least 0, got -1.0"),
    ("kto.max_steps=0", "kto.max_steps: must be at least 1, got 0"),
    ("kto.min_labels=-4", "kto.min_labels: must be at least 1, got -4"),
    ("dpo.learning_rate=nan", "dpo.learning_rate: expected a finite number, got nan"),
    ("dpo.beta=nan", "dpo.beta: expected a finite number, got nan"),
    ("quality:near_duplicate_similarity=nan", "near_duplicate_similarity: expected a finite number, got nan"),
    ("quality:max_reply_uses=-5", "max_reply_uses: must be at least 1, got -5"),
    ("quality:show=-1", "show: must be at least 0, got -1"),
])
def test_bad_retrain_and_quality_settings_name_the_key(tmp_path, override, message):
    from trainer.dataset.build import load_quality_settings
    from trainer.retrain import load_retrain_settings

    config = tmp_path / "settings.yaml"  # absent: every setting at its default, then the override
    with pytest.raises(UserError) as error:
        if override.startswith("quality:"):
            load_quality_settings(config, [override.removeprefix("quality:")])
        else:
            load_retrain_settings(config, [override])
    assert str(error.value) == f"{config}: {message}"


def test_bad_profile_file_and_unknown_profile_from_the_command_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: smollm2-135m\nlora:\n  r: 8\n  rnak: 3\n")
    for argv, expected in (
        (["--profile", str(bad)], f"error: {bad}: unknown key 'lora.rnak'"),
        (["--profile", "no-such-profile"], "error: unknown profile 'no-such-profile' (known: qwen2.5-3b-6gb, smollm2-cpu"),
    ):
        done = subprocess.run([sys.executable, "-m", "trainer", "train", *argv], capture_output=True, text=True,
                              cwd=PROJECT_ROOT, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip().startswith(expected), done.stderr


def test_qwen_plan_fits_6_gb_with_every_term():
    profile = load_profile("qwen2.5-3b-6gb")
    arch = Architecture.from_config(model_config(profile.model))
    assert (arch.hidden, arch.layers, arch.vocab, arch.kv_heads) == (2048, 36, 151_936, 2)
    plan = estimate(profile, arch, on_gpu=True)
    names = [name for name, _, _ in plan.terms]
    for term in ("base weights, projections (NF4)", "LoRA weights", "optimizer state", "activations", "loss: fused LM head (TRL)"):
        assert term in names
    assert plan.fits and plan.total < 6 * GIB
    # The loss never holds the 1,024 x 151,936 logits (1.45 GiB): one 1,024 x 32,768 bf16 tile, the
    # scored hidden states (bf16 copy, fp32 gradient and its bf16 cast) and seven fp32 statistics a token.
    loss, how = next((b, h) for n, b, h in plan.terms if n == "loss: fused LM head (TRL)")
    assert loss == 1024 * 32_768 * 2 + 1024 * 2048 * 8 + 1024 * 28
    assert loss < 0.1 * GIB and "the full logits would be 1.45 GiB" in how


def test_the_plan_counts_the_fused_head_tiles_of_the_installed_trl():
    from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    from trainer.plan import FUSED_TOKENS, FUSED_VOCAB

    assert (FUSED_TOKENS, FUSED_VOCAB) == (TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE)


def test_plan_responds_to_the_profile():
    arch = Architecture.from_config(model_config("Qwen/Qwen2.5-3B-Instruct"))
    base = estimate(load_profile("qwen2.5-3b-6gb"), arch, on_gpu=True)
    # With the fused loss 4,096 tokens a row would fit; 16,384 would not (activations).
    longer = estimate(load_profile("qwen2.5-3b-6gb", ["max_seq_len=16384"]), arch, on_gpu=True)
    no_checkpointing = estimate(load_profile("qwen2.5-3b-6gb", ["gradient_checkpointing=false"]), arch, on_gpu=True)
    full_precision = estimate(load_profile("qwen2.5-3b-6gb", ["quantization=none"]), arch, on_gpu=True)
    assert not longer.fits and not no_checkpointing.fits and not full_precision.fits
    assert base.total < longer.total and base.total < no_checkpointing.total and base.total < full_precision.total
