"""On-device benchmark of exported TFLite artefacts (adb + LiteRT benchmark_model), or on this computer."""
