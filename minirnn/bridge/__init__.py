"""Bridges between minirnn and other engines' recurrent layers.

- :mod:`minirnn.bridge.torch`  PyTorch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` to and from minirnn layers
- :mod:`minirnn.bridge.onnx`   minirnn layers and models written as ONNX graphs

May use: numpy and minirnn's public layers and models; torch, onnx and onnxruntime only
inside the functions that need them, so that ``import minirnn`` stays free of them.
"""
