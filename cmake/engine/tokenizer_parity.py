"""Checks that vLLM's model (its HF tokenizer) and llama-server's GGUF tokenize the same texts to
the same tokens, so the two engines' token counts (A, B, Q sizes, cached tokens) compare.

Two paths per text, as the engines take prompts:
  raw:  HF encode(text, add_special_tokens=False) vs llama-server POST /tokenize {"content": text}
  chat: vLLM's chat path (render the template, encode without adding specials) vs the
        usage.prompt_tokens llama-server reports for /v1/chat/completions with max_tokens 1.

Usage: python tokenizer_parity.py MODEL_DIR URL     (URL: a llama-server serving the GGUF made
from MODEL_DIR by make_gguf.py). Prints one line per text; exits 1 on any difference.
"""

import json
import pathlib
import sys
import sysconfig
import urllib.request

TEXTS = {
    "prose": "The quick brown fox jumps over the lazy dog. It's 3:45pm; costs $12.50 (approx.)!",
    "code": "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n\n\tif x != None: pass\n",
    "cjk": "日本語のテキストと中文文本，还有한국어 텍스트。",
    "emoji": "family 👨‍👩‍👧‍👦, flags 🇩🇪🇯🇵, skin 👍🏽, combining e\u0301 and ﬁ ligature",
    "whitespace": "  leading\n\n\n  \t trailing   \r\n   \u00a0nbsp\u2003em-space   ",
    "digits": "1234567890 3.14159 1e-10 0x1F 1,000,000",
    "specials": "a</s>b<pad> <unk><s> <|kvgate_filler_5|> and <|kvgate_filler_11168|>",
    "long": None,  # a stdlib source file, cut to about 6000 characters
}


def long_text():
    src = pathlib.Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"
    return src.read_text()[:6000]


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, url = sys.argv[1], sys.argv[2].rstrip("/")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = post(url, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                                "max_tokens": 1})["model"]
    bad = 0
    for name, text in TEXTS.items():
        text = text if text is not None else long_text()
        hf = tok.encode(text, add_special_tokens=False)
        ll = post(url, "/tokenize", {"content": text})["tokens"]
        messages = [{"role": "user", "content": text}]
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        hf_chat = len(tok.encode(rendered, add_special_tokens=False))
        ll_chat = post(url, "/v1/chat/completions", {"model": model, "messages": messages, "max_tokens": 1,
                                                     "cache_prompt": False})["usage"]["prompt_tokens"]
        ok = hf == ll and hf_chat == ll_chat
        bad += not ok
        where = ""
        if hf != ll:
            i = next((i for i, (a, b) in enumerate(zip(hf, ll)) if a != b), min(len(hf), len(ll)))
            where = f"; first difference at token {i}: HF {hf[i:i + 5]} vs llama.cpp {ll[i:i + 5]}"
        print(f"{'ok  ' if ok else 'DIFF'} {name:10s} chars {len(text):5d}  raw HF {len(hf):5d} / llama.cpp {len(ll):5d}"
              f"  chat HF {hf_chat:5d} / llama.cpp {ll_chat:5d}{where}")
    print(f"tokenizer parity: {len(TEXTS) - bad} of {len(TEXTS)} texts identical")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
