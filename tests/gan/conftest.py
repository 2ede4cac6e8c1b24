import torch

# tiny models on a shared 2-core machine: intra-op threads only add contention
torch.set_num_threads(1)
