package io.pagedkv.cli;

import io.pagedkv.PagedKvCache;
import io.pagedkv.replay.JsonWriter;
import io.pagedkv.replay.Replay;
import io.pagedkv.replay.RequestResult;
import io.pagedkv.replay.RunResult;
import io.pagedkv.replay.Verifier;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/** Writes a replay report as a table (people) or as JSON lines (programs). */
final class ReportPrinter {
    private final PrintStream out;

    ReportPrinter(PrintStream out) {
        this.out = out;
    }

    // ---- text ---------------------------------------------------------------------------------------

    void text(Replay.Report report) {
        Replay.Options o = report.options();
        out.printf("pagedkv %s replay: %s, %d request%s%n", PagedKvCache.versionString(), report.workload(),
                report.requests().size(), report.requests().size() == 1 ? "" : "s");
        out.println("model: " + o.model().describe());
        out.println("cache: " + o.cache().describe() + "; batch " + o.batch() + "; " + o.sampling().describe());
        out.println();
        RunResult primary = report.primary();
        if (report.reuse() == null) out.println("(reuse off)");
        requestTable(primary);
        out.println();
        summaryTable(report);
        if (report.fcfs() != null || report.events() != null) {
            out.println();
            scheduleAndEvents(report);
        }
        if (report.verify() != null) {
            out.println();
            out.println("verify: " + verifySentence(report.verify()) + (report.verify().ok() ? ": OK" : ": FAILED"));
        }
    }

    private void requestTable(RunResult run) {
        int idWidth = "request".length();
        for (RequestResult r : run.requests()) idWidth = Math.max(idWidth, r.request().id().length());
        idWidth = Math.min(idWidth, 32);
        String header = "%-" + idWidth + "s  %7s  %7s  %5s  %8s  %9s  %8s%n";
        out.printf(header, "request", "prompt", "reused", "hit", "computed", "generated", "ttft ms");
        for (RequestResult r : run.requests()) {
            String id = r.request().id();
            if (id.length() > idWidth) id = id.substring(0, idWidth - 1) + "~";
            out.printf(Locale.ROOT, "%-" + idWidth + "s  %7d  %7d  %5s  %8d  %9d  %8.1f%n", id, r.promptTokens(),
                    r.cachedTokens(), String.format(Locale.ROOT, "%.0f%%", 100.0 * r.cachedTokens() / r.promptTokens()),
                    r.computedTokens(), r.generated().length, r.ttftNanos() / 1e6);
        }
    }

    private void summaryTable(Replay.Report report) {
        List<RunResult> runs = new ArrayList<>();
        List<String> names = new ArrayList<>();
        if (report.reuse() != null) {
            runs.add(report.reuse());
            names.add(report.fcfs() != null ? "on, lpm" : "reuse on");
        }
        if (report.fcfs() != null) {
            runs.add(report.fcfs());
            names.add("on, fcfs");
        }
        if (report.noReuse() != null) {
            runs.add(report.noReuse());
            names.add("reuse off");
        }
        String label = "%-30s";
        StringBuilder head = new StringBuilder(String.format(label, ""));
        for (String n : names) head.append(String.format("%14s", n));
        out.println(head);
        row(runs, "prompt tokens", r -> Long.toString(r.promptTokens()));
        row(runs, "reused (hit rate)", r -> String.format(Locale.ROOT, "%d (%.1f%%)", r.cachedTokens(), 100 * r.hitRate()));
        row(runs, "prefill tokens computed", r -> Long.toString(r.computedTokens()));
        if (report.reuse() != null && report.noReuse() != null) {
            row(runs, "prefill tokens saved", r -> Long.toString(report.noReuse().computedTokens() - r.computedTokens()));
        }
        row(runs, "generated tokens", r -> Long.toString(r.generatedTokens()));
        row(runs, "pages in use (peak)", r -> Integer.toString(r.peakPagesInUse()));
        row(runs, "pages cached at the end", r -> Integer.toString(r.stats().pagesCached()));
        row(runs, "partial-page copies", r -> Long.toString(r.stats().cowCopies()));
        row(runs, "evictions", r -> Long.toString(r.stats().evictions()));
        if (report.options().batch() > 1) {
            row(runs, "steps (cascade)", r -> r.steps() + " (" + r.cascadeSteps() + ")");
        }
        row(runs, "time to first token, mean", r -> String.format(Locale.ROOT, "%.1f ms", r.meanTtftMillis()));
        row(runs, "  from arrival (queue incl.)", r -> String.format(Locale.ROOT, "%.1f ms", r.meanLatencyMillis()));
        if (report.fcfs() != null) {
            row(runs, "most passed over (aging)", r -> Integer.toString(r.maxBypassed()));
        }
        row(runs, "prefill time", r -> String.format(Locale.ROOT, "%.3f s", r.prefillNanos() / 1e9));
        row(runs, "decode tokens/s", r -> String.format(Locale.ROOT, "%.0f", r.decodeTokensPerSecond()));
        row(runs, "wall time", r -> String.format(Locale.ROOT, "%.3f s", r.wallNanos() / 1e9));
        if (report.reuse() != null && report.noReuse() != null) {
            RunResult on = report.reuse();
            RunResult off = report.noReuse();
            out.println();
            out.printf(Locale.ROOT, "speed-up with reuse: time to first token %.2fx, prefill %.2fx, wall time %.2fx%n",
                    ratio(off.meanTtftMillis(), on.meanTtftMillis()), ratio(off.prefillNanos(), on.prefillNanos()),
                    ratio(off.wallNanos(), on.wallNanos()));
            out.println("same tokens generated with and without reuse: "
                    + (Boolean.TRUE.equals(report.outputsMatch()) ? "yes" : "no (near-tie logits can flip a choice; --verify compares logits)"));
        }
    }

    private void scheduleAndEvents(Replay.Report report) {
        if (report.fcfs() != null && report.reuse() != null) {
            RunResult lpm = report.reuse();
            RunResult fcfs = report.fcfs();
            out.printf(Locale.ROOT,
                    "lpm vs fcfs (both with reuse): %d prefill tokens computed vs %d (%+d saved), mean time to first"
                            + " token from arrival %.1f ms vs %.1f ms (%.2fx), wall time %.2fx; aging bound %d%n",
                    lpm.computedTokens(), fcfs.computedTokens(), fcfs.computedTokens() - lpm.computedTokens(),
                    lpm.meanLatencyMillis(), fcfs.meanLatencyMillis(), ratio(fcfs.meanLatencyMillis(), lpm.meanLatencyMillis()),
                    ratio(fcfs.wallNanos(), lpm.wallNanos()), report.options().agingBound());
        }
        if (report.events() != null) {
            var e = report.events();
            Replay.KvEventsOptions k = report.options().kvEvents();
            out.printf(Locale.ROOT, "kv events on %s%s (topic %s): %d events in %d batches, %d sent, %d dropped, %d replay requests%n",
                    k.endpoint(), k.replayEndpoint() == null ? "" : ", replay " + k.replayEndpoint(), k.topic(),
                    e.eventsAccepted(), e.batchesAccepted(), e.batchesSent(), e.batchesDropped(), e.replayRequests());
        }
    }

    private void row(List<RunResult> runs, String label, Function<RunResult, String> cell) {
        StringBuilder sb = new StringBuilder(String.format("%-30s", label));
        for (RunResult r : runs) sb.append(String.format("%14s", cell.apply(r)));
        out.println(sb);
    }

    static String verifySentence(Verifier.Result v) {
        String where = v.worstRequest() == null ? "" : " (request " + v.worstRequest() + ", generated token " + (v.worstIndex() + 1) + ")";
        return String.format(Locale.ROOT,
                "%d generated positions of %d requests recomputed from scratch without reuse; max |logit difference| %.3g%s, tolerance %.3g",
                v.positions(), v.requests(), v.maxAbsDiff(), where, v.tolerance());
    }

    private static double ratio(double slow, double fast) {
        return fast <= 0 ? Double.NaN : slow / fast;
    }

    // ---- JSON ---------------------------------------------------------------------------------------

    void json(Replay.Report report) {
        RunResult primary = report.primary();
        for (RequestResult r : primary.requests()) {
            out.println(new JsonWriter()
                    .field("type", "request")
                    .field("id", r.request().id())
                    .field("line", r.request().line())
                    .field("salt", r.request().salt())
                    .field("prompt_tokens", r.promptTokens())
                    .field("cached_tokens", r.cachedTokens())
                    .field("computed_tokens", r.computedTokens())
                    .field("generated_tokens", r.generated().length)
                    .field("ttft_ms", r.ttftNanos() / 1e6)
                    .field("output_tokens", r.generated()));
        }
        Replay.Options o = report.options();
        JsonWriter summary = new JsonWriter()
                .field("type", "summary")
                .field("workload", report.workload())
                .field("requests", primary.requests().size())
                .field("reuse", report.reuse() != null);
        runFields(summary, primary);
        summary.field("config", new JsonWriter()
                .field("page_size", o.cache().pageSize())
                .field("pages", o.cache().pages())
                .field("kv_dtype", o.cache().kvDtype().name().toLowerCase(Locale.ROOT))
                .field("device", o.cache().device().toString())
                .field("batch", o.batch())
                .field("sampling", o.sampling().describe()));
        if (report.reuse() != null && report.noReuse() != null) {
            RunResult on = report.reuse();
            RunResult off = report.noReuse();
            summary.field("no_reuse", runFields(new JsonWriter(), off))
                    .field("prefill_tokens_saved", off.computedTokens() - on.computedTokens())
                    .field("speedup_ttft", ratio(off.meanTtftMillis(), on.meanTtftMillis()))
                    .field("speedup_prefill", ratio(off.prefillNanos(), on.prefillNanos()))
                    .field("speedup_wall", ratio(off.wallNanos(), on.wallNanos()))
                    .field("outputs_match", Boolean.TRUE.equals(report.outputsMatch()));
        }
        summary.field("schedule", primary.schedule().name().toLowerCase(Locale.ROOT));
        if (report.fcfs() != null) {
            summary.field("fcfs", runFields(new JsonWriter(), report.fcfs()))
                    .field("aging_bound", o.agingBound())
                    .field("max_passed_over", primary.maxBypassed());
        }
        if (report.events() != null) {
            var e = report.events();
            summary.field("kv_events", new JsonWriter()
                    .field("endpoint", o.kvEvents().endpoint())
                    .field("topic", o.kvEvents().topic())
                    .field("events", e.eventsAccepted())
                    .field("batches", e.batchesAccepted())
                    .field("sent", e.batchesSent())
                    .field("dropped", e.batchesDropped()));
        }
        if (report.verify() != null) {
            Verifier.Result v = report.verify();
            summary.field("verify", new JsonWriter()
                    .field("ok", v.ok())
                    .field("positions", v.positions())
                    .field("max_abs_diff", v.maxAbsDiff())
                    .field("tolerance", v.tolerance())
                    .field("worst_request", v.worstRequest()));
        }
        out.println(summary);
    }

    private static JsonWriter runFields(JsonWriter w, RunResult r) {
        return w.field("prompt_tokens", r.promptTokens())
                .field("cached_tokens", r.cachedTokens())
                .field("computed_tokens", r.computedTokens())
                .field("generated_tokens", r.generatedTokens())
                .field("hit_rate", r.hitRate())
                .field("pages_in_use_peak", r.peakPagesInUse())
                .field("pages_cached", r.stats().pagesCached())
                .field("partial_page_copies", r.stats().cowCopies())
                .field("evictions", r.stats().evictions())
                .field("steps", r.steps())
                .field("cascade_steps", r.cascadeSteps())
                .field("preemptions", r.preemptions())
                .field("deferrals", r.deferrals())
                .field("ttft_ms_mean", r.meanTtftMillis())
                .field("ttft_from_arrival_ms_mean", r.meanLatencyMillis())
                .field("prefill_s", r.prefillNanos() / 1e9)
                .field("decode_tokens_per_s", r.decodeTokensPerSecond())
                .field("wall_s", r.wallNanos() / 1e9);
    }
}
