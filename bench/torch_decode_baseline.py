#!/usr/bin/env python3
"""PyTorch's fused attention on the decode shapes of bench_gpu, with contiguous bf16 KV.

The peer for the design target "paged kernels no slower than PyTorch's fused attention on the same
data laid out contiguously": q [B, 32, 1, 128], k and v [B, 8, L, 128] (GQA, enable_gqa=True), the
per-call median of back-to-back calls timed with CUDA events (as bench_gpu does), for each SDPA
backend that accepts the shape; the best is reported. Also measures the device-to-device copy
bandwidth (read + write) in the same run.
Prints "RESULT ..." lines (read by scripts/gpu-check) and a short table last.
"""
import sys

SHAPES = [(64, 4096), (64, 1024), (16, 16384), (1, 65536)]
Q_HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
WARMUP, TRIALS, CALLS = 3, 7, 5


def time_ms(torch, fn):
    """Milliseconds per call: median over TRIALS of CALLS back-to-back calls (as bench_gpu times)."""
    for _ in range(WARMUP):
        fn()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(TRIALS):
        start.record()
        for _ in range(CALLS):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / CALLS)
    times.sort()
    return times[len(times) // 2]


def main():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as error:
        print(f"torch_decode_baseline: SKIP: no PyTorch ({error})")
        return 0
    if not torch.cuda.is_available():
        print("torch_decode_baseline: SKIP: PyTorch sees no CUDA device")
        return 0
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    device = torch.device("cuda")
    torch.manual_seed(0)

    elements = (1 << 30) // 2
    src = torch.randn(elements, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    copy_ms = time_ms(torch, lambda: dst.copy_(src))
    copy_gbps = 2 * elements * 2 / (copy_ms * 1e-3) / 1e9
    print(f"RESULT torch_copy_d2d time_ms={copy_ms:.4f} gbps={copy_gbps:.1f}")
    del src, dst

    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backends = [("default", None), ("flash", SDPBackend.FLASH_ATTENTION),
                    ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                    ("math", SDPBackend.MATH)]
    except ImportError:
        sdpa_kernel = None
        backends = [("default", None)]

    rows = []
    for batch, length in SHAPES:
        q = torch.randn(batch, Q_HEADS, 1, HEAD_DIM, dtype=torch.bfloat16, device=device)
        k = torch.randn(batch, KV_HEADS, length, HEAD_DIM, dtype=torch.bfloat16, device=device)
        v = torch.randn_like(k)
        best = None
        for name, backend in backends:
            if name == "math" and best is not None:
                continue  # the unfused fallback only when nothing fused ran

            def run():
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

            try:
                if backend is None:
                    ms = time_ms(torch, run)
                else:
                    with sdpa_kernel(backend):
                        ms = time_ms(torch, run)
            except (RuntimeError, TypeError) as error:
                print(f"  {batch}x{length} {name}: not available ({str(error).splitlines()[0][:100]})")
                continue
            print(f"  {batch}x{length} {name}: {ms:.4f} ms")
            if best is None or ms < best[1]:
                best = (name, ms)
        del q, k, v
        torch.cuda.empty_cache()
        if best is None:
            continue
        kv_bytes = 2 * batch * KV_HEADS * length * HEAD_DIM * 2
        gbps = kv_bytes / (best[1] * 1e-3) / 1e9
        print(f"RESULT torch_decode_{batch}x{length} time_ms={best[1]:.4f} gbps={gbps:.1f} "
              f"frac={gbps / copy_gbps:.3f} backend={best[0]}")
        rows.append((f"{batch}x{length}", best[0], best[1], gbps, gbps / copy_gbps))

    print(f"\n{'torch SDPA decode':<18} {'backend':>9} {'time_ms':>9} {'GB/s':>8} {'%copy':>7}")
    for shape, backend, ms, gbps, fraction in rows:
        print(f"{shape:<18} {backend:>9} {ms:9.4f} {gbps:8.1f} {100 * fraction:6.1f}%")
    print(f"{'copy D2D (r+w)':<18} {'':>9} {copy_ms:9.4f} {copy_gbps:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
