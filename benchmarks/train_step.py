"""Cost of distillation per training step, on one fixed batch.

Times, with the trainer's own code path (``StudentStep``, the registered method):

* ``student``: a student-only step (forward, CE + aux CE, backward, SGD step);
* ``teacher``: a teacher forward in eval mode without autograd;
* ``distill``: a distillation step (teacher forward + student step with the method's terms).

and prints, as its last line, ``overhead <method>: <ratio>`` with ratio = distill / (student + teacher):
1.00 means the method itself costs nothing beyond the two networks. Medians over ``--repeats`` steps
after ``--warmup`` steps.

    python benchmarks/train_step.py                       # quick-study models, CPU
    python benchmarks/train_step.py --method kd --device cuda --amp bf16 --width 1 --teacher-width 1 \\
        --teacher deeplabv3_resnet101 --size 512 1024 --batch 8
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, List

import torch

from kdlib.distributed import resolve_device
from kdlib.engine.recipes import method_defaults
from kdlib.engine.trainer import AMP_DTYPES, StudentStep
from kdlib.methods import PairSpec, build_distiller
from kdlib.models import build_model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="kd", help="registered distillation method (default kd)")
    p.add_argument("--student", default="deeplabv3_resnet18", help="student model name")
    p.add_argument("--teacher", default="deeplabv3_resnet18", help="teacher model name")
    p.add_argument("--width", type=float, default=0.25, help="student width (default 0.25, as kdlib quick)")
    p.add_argument("--teacher-width", type=float, default=0.5, help="teacher width (default 0.5, as kdlib quick)")
    p.add_argument("--num-classes", type=int, default=11, help="classes (default 11)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--size", type=int, nargs=2, default=[64, 128], metavar=("H", "W"), help="crop (default 64 128)")
    p.add_argument("--dataset", default="synthetic_streets", help="dataset whose paper defaults the method uses")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--amp", default="none", choices=sorted(AMP_DTYPES), help="autocast dtype (default none)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed steps per measurement (default 10)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p.parse_args()


def median_seconds(fn: Callable[[], None], warmup: int, repeats: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = AMP_DTYPES[args.amp]
    torch.manual_seed(0)
    h, w = args.size
    images = torch.randn(args.batch, 3, h, w, device=device) * 50
    labels = torch.randint(-1, args.num_classes, (args.batch, h, w), device=device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    images = images.contiguous(memory_format=fmt)

    def make_student() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(args.student, args.num_classes, aux=True, width=args.width)

    teacher = build_model(args.teacher, args.num_classes, aux=True, width=args.teacher_width)
    teacher = teacher.to(device, memory_format=fmt).eval().requires_grad_(False)

    defaults = method_defaults(args.method, args.dataset)
    student = make_student()
    pair = PairSpec(args.num_classes, student.feature_channels, teacher.feature_channels, student.c4_channels,
                    teacher.c4_channels)
    distiller = build_distiller(args.method, pair, defaults.get("loss_weights", {}),
                                defaults.get("method_options", {}))
    plain = StudentStep(make_student(), None, {}, 0.4).to(device, memory_format=fmt).train()
    distill = StudentStep(student, distiller, defaults.get("loss_weights", {}), 0.4)
    distill = distill.to(device, memory_format=fmt).train()

    def step_fn(module: StudentStep, with_teacher: bool) -> Callable[[], None]:
        opt = torch.optim.SGD(module.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
        scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)

        def run() -> None:
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                t_out = None
                if with_teacher:
                    with torch.no_grad():
                        t_out = teacher(images)
                total, _ = module(images, labels, t_out)
            opt.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
        return run

    def teacher_fn() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            teacher(images)

    t_student = median_seconds(step_fn(plain, False), args.warmup, args.repeats, device)
    t_teacher = median_seconds(teacher_fn, args.warmup, args.repeats, device)
    t_distill = median_seconds(step_fn(distill, True), args.warmup, args.repeats, device)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"device {device} (threads {threads}), amp {args.amp}, batch {args.batch}, {h}x{w}, "
          f"student {args.student} x{args.width}, teacher {args.teacher} x{args.teacher_width}")
    print(f"student step  {1000 * t_student:9.1f} ms")
    print(f"teacher fwd   {1000 * t_teacher:9.1f} ms")
    print(f"distill step  {1000 * t_distill:9.1f} ms  ({args.method})")
    print(f"overhead {args.method}: {t_distill / (t_student + t_teacher):.3f}")


if __name__ == "__main__":
    main()
