"""What litlab takes from Lightning and TensorBoard beyond their public interfaces
(lightning_internals.py). A new Lightning that changes these fails here, by name."""

from __future__ import annotations

from torch.utils.tensorboard import SummaryWriter

from litlab.lightning_internals import tensorboard_file_writer


def test_the_summary_writer_reopens_its_file_writer_after_close(tmp_path):
    writer = SummaryWriter(tmp_path)
    writer.close()
    file_writer = tensorboard_file_writer(writer)  # Lightning closes it at the end of fit
    assert hasattr(file_writer, "add_summary")
    assert file_writer.get_logdir() == str(tmp_path)
    writer.close()
