{
  # Built by scripts/build-native.mjs, which sets TFJS_DISTILL_CFLAGS / TFJS_DISTILL_INCLUDE /
  # TFJS_DISTILL_LIBS after checking that a compiler, OpenBLAS and (optionally) AVX2+FMA work.
  "targets": [
    {
      "target_name": "tfjs_distill_native",
      "sources": ["src/addon.c", "src/workers.c", "src/gemm.c", "src/sgemm512.c", "src/ew.c", "src/conv.c", "src/winograd.c", "src/plan.c"],
      "include_dirs": ["<!@(node -p \"process.env.TFJS_DISTILL_INCLUDE || ''\")"],
      "cflags": ["-O3", "-std=gnu11", "-fno-math-errno", "-fvisibility=hidden", "-Wall", "-Wno-unused-function",
                 "<!@(node -p \"process.env.TFJS_DISTILL_CFLAGS || ''\")"],
      "cflags!": ["-O2", "-O0"],
      "libraries": ["<!@(node -p \"process.env.TFJS_DISTILL_LIBS || '-lopenblas'\")", "-lpthread", "-lm"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
