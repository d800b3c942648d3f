"""Makes kvgate's default model directory with no network: facebook/opt-125m's architecture (or, with
--shape llama-3.1-8b, Llama-3.1-8B's), served with random weights (vllm --load-format dummy), a
byte-level BPE tokenizer trained here, and the seed's chat template (message contents concatenated).

Random weights change no shapes, so prefill compute -- and with it TTFT -- is that of the real model.
The tokenizer has exactly the model's vocab_size entries: random weights sample any id, and an id
the tokenizer does not know would break detokenization.

The Llama-3.1-8B shape is the GPU default where memory allows (engine.sh): OPT-125m's prefill is so
cheap on an H100/H200 that the cache's saving drowns in the server's per-request work; the 8B shape's
separates from about 1300 prompt tokens (../shared/notes/vllm-gpu.md). It keeps our tokenizer (same
vocabulary, ids and BOS), so everything that reads the tokenizer is unchanged; its context is 8192
(the config's positions and the tokenizer's model_max_length, which vLLM takes the smaller of).

Usage: python make_model.py OUT_DIR [--shape opt-125m|llama-3.1-8b]
       (idempotent: an existing, complete directory of that shape is left alone)
"""

import json
import os
import pathlib
import sys
import sysconfig

VOCAB_SIZE = 50272  # opt-125m's config.json (50265 tokenizer entries padded to a multiple of 8)
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # OPT's ids 0..3
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
STAMP = "kvgate-model.json"  # written last: its presence means the directory is complete
FORMAT = 1

OPT_125M_CONFIG = {
    "architectures": ["OPTForCausalLM"],
    "model_type": "opt",
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "ffn_dim": 3072,
    "max_position_embeddings": 2048,
    "word_embed_proj_dim": 768,
    "do_layer_norm_before": True,
    "activation_function": "relu",
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "layerdrop": 0.0,
    "init_std": 0.02,
    "enable_bias": True,
    "layer_norm_elementwise_affine": True,
    "bos_token_id": 2,
    "eos_token_id": 2,
    "pad_token_id": 1,
    "prefix": "</s>",
    "torch_dtype": "float16",
    "use_cache": True,
}

# meta-llama/Llama-3.1-8B's sizes with our tokenizer's vocabulary and special ids (bos = eos = 2, pad 1).
LLAMA_31_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "attention_bias": False,
    "mlp_bias": False,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "bos_token_id": 2,
    "eos_token_id": 2,
    "pad_token_id": 1,
    "torch_dtype": "bfloat16",
    "use_cache": True,
}

SHAPES = {
    # name: (config, tokenizer model_max_length, what the stamp names)
    "opt-125m": (OPT_125M_CONFIG, 2048, "facebook/opt-125m"),
    "llama-3.1-8b": (LLAMA_31_8B_CONFIG, 8192, "meta-llama/Llama-3.1-8B (shape only)"),
}


def corpus_files():
    """Training text that every machine has: the Python standard library of this interpreter,
    in a fixed order, so the tokenizer is the same wherever it is built."""
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py"))
    return [str(p) for p in files]


def build_tokenizer(out: pathlib.Path, model_max_length: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train(corpus_files(), trainer)
    # A corpus too small for VOCAB_SIZE merges leaves the vocabulary short: fill it with tokens
    # that decode to plain text, so every id the model can sample has a spelling.
    short = VOCAB_SIZE - tok.get_vocab_size()
    if short > 0:
        tok.add_tokens([f"<|kvgate_filler_{i}|>" for i in range(short)])
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    # OPT prepends </s> (id 2) to every prompt.
    tok.post_processor = processors.TemplateProcessing(
        single="</s> $A", pair="</s> $A $B", special_tokens=[("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="</s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=model_max_length,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))


def main():
    args = sys.argv[1:]
    shape = "opt-125m"
    if "--shape" in args:
        i = args.index("--shape")
        shape = args[i + 1]
        del args[i : i + 2]
    if len(args) != 1 or shape not in SHAPES:
        sys.exit("usage: make_model.py OUT_DIR [--shape " + "|".join(SHAPES) + "]")
    config, max_len, architecture = SHAPES[shape]
    out = pathlib.Path(args[0]).resolve()
    stamp = out / STAMP
    if stamp.exists():
        old = json.loads(stamp.read_text())
        if old.get("format") == FORMAT and old.get("architecture") == architecture:
            print(f"model: {out} is complete")
            return
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1}, indent=2) + "\n"
    )
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE + "\n")
    build_tokenizer(out, max_len)
    stamp.write_text(json.dumps({"format": FORMAT, "architecture": architecture, "weights": "dummy",
                                 "context": min(max_len, config["max_position_embeddings"])}) + "\n")
    print(f"model: wrote {out}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    main()
