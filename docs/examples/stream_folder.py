#!/usr/bin/env python3
"""Streams a folder of JPEG or PNG images (in name order) to a costream server over the
WebSocket protocol's JSON encoding and prints the answer to every frame.

    pip install websockets
    python3 stream_folder.py FOLDER [--url ws://127.0.0.1:8080/v1/stream]
                                    [--model synthetic-actions] [--top-k 3] [--token TOKEN]
"""
import argparse
import asyncio
import base64
import json
import pathlib
import sys

import websockets


async def stream(args):
    images = sorted(
        p for p in pathlib.Path(args.folder).iterdir()
        if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    if not images:
        sys.exit(f"no .jpg/.jpeg/.png files in {args.folder}")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    async with websockets.connect(args.url, additional_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps({"start": {"model": args.model, "options": {"topK": args.top_k}}}))
        kind, ready = next(iter(json.loads(await ws.recv()).items()))
        if kind != "ready":
            sys.exit(f"the server refused the stream: {ready}")
        print(f"stream {ready['streamId']}: {ready['model']}, first prediction after "
              f"{ready.get('delay', 0)} frames")

        async def send_frames():
            # Frames are sent as fast as the server reads them (it applies back-pressure).
            for seq, path in enumerate(images):
                encoded = base64.b64encode(path.read_bytes()).decode()
                await ws.send(json.dumps({"frame": {"seq": str(seq), "pts": str(seq), "encoded": encoded}}))
            await ws.send(json.dumps({"end": {}}))

        sender = asyncio.create_task(send_frames())
        async for text in ws:
            kind, body = next(iter(json.loads(text).items()))
            if kind == "prediction":
                labels = ", ".join(f"{l['label']} {l['score']:.3f}" for l in body["topK"])
                print(f"{images[int(body['seq'])].name}: {labels}")
            elif kind == "filling":
                print(f"{images[int(body.get('seq', 0))].name}: (filling)")
            elif kind == "error":
                print(f"error {body['code']}: {body['message']}", file=sys.stderr)
            elif kind == "summary":
                print(f"done: {body}")
                break
        await sender


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--url", default="ws://127.0.0.1:8080/v1/stream")
    parser.add_argument("--model", default="synthetic-actions")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--token", help="an API key, when the server requires one")
    asyncio.run(stream(parser.parse_args()))


if __name__ == "__main__":
    main()
