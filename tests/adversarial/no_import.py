# expect: build_error: ModuleNotFoundError
# Imports a module that does not exist.
import torch
import kernels_that_do_not_exist


class ModelNew(torch.nn.Module):
    pass
