"""What the render budget costs an ordinary template: the sandbox as it was, against the
budgeted sandbox. Run from the repository root: .venv/bin/python scripts/measure_render_budget.py"""

import timeit

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from orchestrator.templating.budget import RenderBudget, compile_template, render_within
from orchestrator.templating.store import text_environment

plain_env = SandboxedEnvironment(undefined=StrictUndefined)
budget = RenderBudget()
src_plain = open("templates/welcome-email/en.txt").read().split("---\n", 2)[2]
src_loop = "Your order:\n{% for item in event.lines %}- {{ item.name }} x{{ item.qty }}: {{ '%.2f'|format(item.price) }}\n{% endfor %}Total {{ event.total }}"
ctx = {
    "customer": {"first_name": "Ann"},
    "event": {"total": 42, "lines": [{"name": f"item{i}", "qty": i, "price": 9.5} for i in range(5)]},
}
for label, src in (("welcome-email (no loop)", src_plain), ("order lines (5-item loop)", src_loop)):
    before = plain_env.from_string(src)
    after = compile_template(text_environment, src)
    n = 20000
    b = min(timeit.repeat(lambda: before.render(ctx), number=n, repeat=5)) / n * 1e6
    a = min(timeit.repeat(lambda: render_within(after, ctx, budget), number=n, repeat=5)) / n * 1e6
    print(f"{label}: plain sandbox render {b:.1f} us, budgeted {a:.1f} us ({(a / b - 1) * 100:+.0f}%)")
