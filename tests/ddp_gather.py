"""Run by tests/test_distributed.py under torchrun with 2 processes: the bi-encoder loss with
in-batch negatives gathered across processes equals the single-process loss over the whole batch."""

import gc

import torch
from accelerate import Accelerator

from odqa.training.dense import DenseTrainingConfig, contrastive_step
from odqa.training.loop import close_processes

accelerator = Accelerator(cpu=True)
torch.manual_seed(0)
weight = torch.randn(6, 6)  # every process starts from the same "encoder": one linear map
vectors = torch.randn(8, 6)  # 4 questions then 4 passages; process r holds questions/passages 2r, 2r+1


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.clone())

    def forward(self, queries=None, passages=None):
        encode = lambda rows: None if rows is None else rows["x"] @ self.weight
        return encode(queries), encode(passages)


config = DenseTrainingConfig(model="m", train=["t"], out="o", temperature=0.5)
step = contrastive_step(config)

single = Linear()  # the reference: one process, all four questions
q, p = single(queries={"x": vectors[:4]}, passages={"x": vectors[4:]})
reference = torch.nn.functional.cross_entropy(q @ p.T / 0.5, torch.arange(4))
reference.backward()

model = accelerator.prepare(Linear())
r = accelerator.process_index
batch = {"q_x": vectors[2 * r : 2 * r + 2], "p_x": vectors[4 + 2 * r : 4 + 2 * r + 2]}
loss = step(model, batch, accelerator)
torch.testing.assert_close(loss, reference.detach(), rtol=1e-5, atol=1e-6)
torch.testing.assert_close(accelerator.unwrap_model(model).weight.grad, single.weight.grad, rtol=1e-4, atol=1e-6)
print("gathered loss and gradient match", flush=True)
del model, loss  # the DDP wrapper and its graph hold the process group: release them before it closes
gc.collect()
close_processes()
