"""Makes the llama.cpp counterpart of kvgate's default model with no network: a random-weight GGUF
at facebook/opt-125m's sizes that carries the SAME tokenizer as the vLLM model directory made by
make_model.py, so both engines see the same token counts for the same text.

llama.cpp has no OPT architecture; GPT-2's at OPT-125m's sizes (12 layers, n_embd 768, 12 heads,
n_ff 3072, learned positions, LayerNorm with biases) has the same prefill compute. Weights are
random (std 0.02, fixed seed), f16; norms and biases f32; the output layer is tied to token_embd.
The position table fixes the longest sequence llama-server will serve, whatever its -c says, so
the context size is an argument.

Usage: python make_gguf.py MODEL_DIR OUT.gguf [--ctx N]
  MODEL_DIR: the directory make_model.py wrote (its tokenizer.json and chat template are used).
  Idempotent: OUT.gguf.json (written last) records what OUT.gguf was made from; when it matches,
  nothing is done.
"""

import argparse
import hashlib
import json
import pathlib
import sys

FORMAT = 1
N_EMBD, N_LAYER, N_HEAD, N_FF = 768, 12, 12, 3072  # opt-125m's config.json
LAYER_NORM_EPS = 1e-5
INIT_STD = 0.02
SEED = 125


def tokenizer_metadata(model_dir: pathlib.Path):
    """Tokens for every id, their types and the merges, from HF's tokenizer.json."""
    from gguf import TokenType

    spec = json.loads((model_dir / "tokenizer.json").read_text())
    model = spec["model"]
    if model["type"] != "BPE" or spec["pre_tokenizer"].get("type") != "ByteLevel":
        sys.exit(f"make_gguf: {model_dir}/tokenizer.json is not a byte-level BPE; only that maps to GGUF's 'gpt2' tokenizer")
    if spec["pre_tokenizer"].get("add_prefix_space") or not spec["pre_tokenizer"].get("use_regex", True):
        sys.exit("make_gguf: the ByteLevel pre-tokenizer must have add_prefix_space=false and use_regex=true (GGUF's 'gpt-2' pre-tokenizer)")
    by_id = {i: (t, TokenType.NORMAL) for t, i in model["vocab"].items()}
    for added in spec["added_tokens"]:
        # Specials are control tokens (parsed only where the caller asks for specials, as in HF);
        # other added tokens are user-defined, which llama.cpp, like HF, always matches whole.
        kind = TokenType.CONTROL if added["special"] else TokenType.USER_DEFINED
        by_id[added["id"]] = (added["content"], kind)
    n_vocab = max(by_id) + 1
    missing = [i for i in range(n_vocab) if i not in by_id]
    if missing:
        sys.exit(f"make_gguf: tokenizer.json has no token for ids {missing[:10]}...; llama.cpp needs one per id")
    tokens = [by_id[i][0] for i in range(n_vocab)]
    types = [by_id[i][1] for i in range(n_vocab)]
    # tokenizers >= 0.20 stores merges as pairs; GGUF wants "left right" strings.
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, types, merges


def special_id(model_dir: pathlib.Path, key: str, tokens):
    name = json.loads((model_dir / "tokenizer_config.json").read_text())[key]
    return tokens.index(name)


def write_gguf(model_dir: pathlib.Path, out: pathlib.Path, ctx: int):
    import numpy as np
    from gguf import GGUFWriter, LlamaFileType

    tokens, types, merges = tokenizer_metadata(model_dir)
    n_vocab = len(tokens)
    template = (model_dir / "chat_template.jinja").read_text().rstrip("\n")

    tmp = out.with_name(out.name + ".tmp")
    w = GGUFWriter(str(tmp), "gpt2")
    w.add_name("opt-125m-dummy (GPT-2 layout, random weights)")
    w.add_context_length(ctx)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_layer_norm_eps(LAYER_NORM_EPS)
    w.add_file_type(LlamaFileType.MOSTLY_F16)

    w.add_tokenizer_model("gpt2")
    # 'gpt-2' is llama.cpp's name for HF ByteLevel's regex (use_regex=true); an unknown name is an
    # error there and a missing one degrades with a warning.
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(special_id(model_dir, "bos_token", tokens))
    w.add_eos_token_id(special_id(model_dir, "eos_token", tokens))
    w.add_pad_token_id(special_id(model_dir, "pad_token", tokens))
    w.add_unk_token_id(special_id(model_dir, "unk_token", tokens))
    # vLLM's chat path renders the template and tokenizes it without adding BOS; so does this.
    w.add_add_bos_token(False)
    w.add_chat_template(template)

    rng = np.random.default_rng(SEED)

    def weight(*shape):  # numpy shapes are ggml's reversed: (rows = out features, cols = in)
        return (rng.standard_normal(shape, dtype=np.float32) * INIT_STD).astype(np.float16)

    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731
    zeros = lambda n: np.zeros(n, dtype=np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", weight(n_vocab, N_EMBD))
    w.add_tensor("position_embd.weight", weight(ctx, N_EMBD))
    for i in range(N_LAYER):
        b = f"blk.{i}"
        w.add_tensor(f"{b}.attn_norm.weight", ones(N_EMBD))
        w.add_tensor(f"{b}.attn_norm.bias", zeros(N_EMBD))
        w.add_tensor(f"{b}.attn_qkv.weight", weight(3 * N_EMBD, N_EMBD))
        w.add_tensor(f"{b}.attn_qkv.bias", zeros(3 * N_EMBD))
        w.add_tensor(f"{b}.attn_output.weight", weight(N_EMBD, N_EMBD))
        w.add_tensor(f"{b}.attn_output.bias", zeros(N_EMBD))
        w.add_tensor(f"{b}.ffn_norm.weight", ones(N_EMBD))
        w.add_tensor(f"{b}.ffn_norm.bias", zeros(N_EMBD))
        w.add_tensor(f"{b}.ffn_up.weight", weight(N_FF, N_EMBD))
        w.add_tensor(f"{b}.ffn_up.bias", zeros(N_FF))
        w.add_tensor(f"{b}.ffn_down.weight", weight(N_EMBD, N_FF))
        w.add_tensor(f"{b}.ffn_down.bias", zeros(N_EMBD))
    w.add_tensor("output_norm.weight", ones(N_EMBD))
    w.add_tensor("output_norm.bias", zeros(N_EMBD))
    # No output.weight: llama.cpp's GPT-2 loader ties the output layer to token_embd.

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=pathlib.Path)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--ctx", type=int, default=2048, help="context length (position table size); default 2048")
    args = ap.parse_args()
    if args.ctx < 16:
        ap.error(f"--ctx {args.ctx} is too small for any prompt")
    model_dir, out = args.model_dir.resolve(), args.out.resolve()
    if not (model_dir / "kvgate-model.json").exists():
        sys.exit(f"make_gguf: {model_dir} is not a complete model directory; run: python cmake/engine/make_model.py {model_dir}")
    want = {
        "format": FORMAT,
        "ctx": args.ctx,
        "seed": SEED,
        "tokenizer_sha256": hashlib.sha256((model_dir / "tokenizer.json").read_bytes()).hexdigest(),
        "chat_template": (model_dir / "chat_template.jinja").read_text().rstrip("\n"),
    }
    stamp = out.with_name(out.name + ".json")
    if out.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        print(f"gguf: {out} is complete")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    write_gguf(model_dir, out, args.ctx)
    stamp.write_text(json.dumps(want) + "\n")
    print(f"gguf: wrote {out} ({out.stat().st_size / 2**20:.0f} MiB, context {args.ctx})")


if __name__ == "__main__":
    main()
