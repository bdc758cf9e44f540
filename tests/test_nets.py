"""The exported graphs: the resnet's peak-cell head equals the full head, and test-time flip inside the
graph is exactly mirror-symmetric."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtalign.landmarks import mirror_points          # noqa: E402
from train.nets import Exported, ResNetPIP, SmallCNN  # noqa: E402


@pytest.mark.parametrize("make", [lambda: ResNetPIP(64, 8, np.tile(np.arange(1, 11), (68, 1))), lambda: SmallCNN(64, 8)])
def test_flipped_graph_gives_the_mirrored_points_of_the_mirrored_crop(make):
    torch.manual_seed(0)
    net = make().eval()
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        pts, score = Exported(net, flip=True)(x)
        pts_m, score_m = Exported(net, flip=True)(x.flip(-1))
        plain, _ = Exported(net)(x)
    np.testing.assert_allclose(mirror_points(pts.numpy(), 64), pts_m.numpy(), atol=1e-4)
    np.testing.assert_allclose(score.numpy(), score_m.numpy(), atol=1e-6)
    assert np.abs(pts.numpy() - plain.numpy()).max() > 1e-3       # the mirror really took part


def test_the_peak_cell_head_gives_the_points_and_score_of_the_full_head():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = ResNetPIP(64, 8, np.stack([rng.choice(np.delete(np.arange(68), k), 10, replace=False) for k in range(68)]))
    for conv in (net.off, net.nb):              # offsets of a few cells, as trained ones are, not ~0
        torch.nn.init.normal_(conv.bias, 0, 0.5)
    net.eval()
    x = torch.randn(5, 1, 64, 64)
    with torch.no_grad():
        out = net(x)
        pts, score = net.predict(x)
    np.testing.assert_allclose(pts.numpy(), net.decode(*out).numpy(), atol=1e-5)
    np.testing.assert_allclose(score.numpy(), net.presence(*out).numpy(), atol=1e-7)
    assert np.ptp(out[0].argmax(-1).numpy()) > 0        # the landmarks peak in different cells
