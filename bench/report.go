package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Figures are the measured numbers of one measurement, by figure name.
type Figures map[string]float64

// The figures. Latencies are in microseconds; "msgs" are echo round trips,
// or broadcast deliveries (one message arriving at one connection).
const (
	FigMsgsPerSec      = "msgs_per_s"
	FigP50             = "p50_us"
	FigP99             = "p99_us"
	FigDeliveryP99     = "delivery_p99_us" // broadcast: send to arrival at one receiver
	FigServerCPUPerMsg = "server_cpu_us_per_msg"
	FigServerCPUPc     = "server_cpu_pct" // of one core
	FigLoadCPUPerMsg   = "loadgen_cpu_us_per_msg"
	FigLoadCPUPc       = "loadgen_cpu_pct"
	FigOtherCPUPc      = "other_cpu_pct" // every other process: noise
	FigBytesPerConn    = "bytes_per_conn"
	FigRSSMiB          = "rss_mib"
	FigDialPerSec      = "dials_per_s"
)

type figureInfo struct {
	key, label string
	format     func(float64) string
}

func figuresFor(kind Kind) []figureInfo {
	rate := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	lat := func(v float64) string { return formatDuration(time.Duration(v * float64(time.Microsecond))) }
	cpu := func(v float64) string { return fmt.Sprintf("%.2f µs", v) }
	pct := func(v float64) string { return fmt.Sprintf("%.0f %%", v) }
	switch kind {
	case Echo, Pipeline:
		return []figureInfo{
			{FigMsgsPerSec, "msgs/s", rate},
			{FigP50, "p50 latency", lat},
			{FigP99, "p99 latency", lat},
			{FigServerCPUPerMsg, "server CPU/msg", cpu},
			{FigServerCPUPc, "server CPU", pct},
			{FigLoadCPUPerMsg, "load-gen CPU/msg", cpu},
			{FigOtherCPUPc, "other processes' CPU", pct},
		}
	case Broadcast:
		return []figureInfo{
			{FigMsgsPerSec, "deliveries/s", rate},
			{FigP50, "p50 all received", lat},
			{FigP99, "p99 all received", lat},
			{FigDeliveryP99, "p99 one delivery", lat},
			{FigServerCPUPerMsg, "server CPU/delivery", cpu},
			{FigServerCPUPc, "server CPU", pct},
			{FigLoadCPUPerMsg, "load-gen CPU/delivery", cpu},
			{FigOtherCPUPc, "other processes' CPU", pct},
		}
	case Idle:
		return []figureInfo{
			{FigBytesPerConn, "bytes/conn", func(v float64) string { return fmt.Sprintf("%.0f", v) }},
			{FigRSSMiB, "server RSS", func(v float64) string { return fmt.Sprintf("%.0f MiB", v) }},
			{FigP50, "broadcast p50 all received", lat},
			{FigP99, "broadcast p99 all received", lat},
			{FigDialPerSec, "handshakes/s", rate},
		}
	}
	return nil
}

func formatDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// Result is one measurement: one scenario, one server, one run.
type Result struct {
	Scenario string  `json:"scenario"`
	Server   string  `json:"server"`
	Run      int     `json:"run"`
	Figures  Figures `json:"figures,omitempty"`
	Error    string  `json:"error,omitempty"`
}

func (r Result) summary(kind Kind) string {
	if r.Error != "" {
		first, _, _ := strings.Cut(r.Error, "\n")
		return "ERROR " + first
	}
	var parts []string
	for _, fi := range figuresFor(kind)[:3] {
		parts = append(parts, fi.label+" "+fi.format(r.Figures[fi.key]))
	}
	if v, ok := r.Figures[FigOtherCPUPc]; ok {
		parts = append(parts, fmt.Sprintf("others %.0f %%", v))
	}
	return strings.Join(parts, ", ")
}

// Machine describes where the comparison ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	Go        string `json:"go"`
	OpenFiles uint64 `json:"open_files_limit"`
}

// ScenarioInfo is a scenario's shape, for the report.
type ScenarioInfo struct {
	Name        string `json:"name"`
	Kind        Kind   `json:"kind"`
	Description string `json:"description"`
	Conns       int    `json:"conns"`
	Size        int    `json:"size"`
	Window      int    `json:"window"`
	Warmup      string `json:"warmup"`
	Duration    string `json:"duration"`
}

// Target is one of the performance targets, judged on the medians.
type Target struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Figure string  `json:"figure"`
	Met    bool    `json:"met"`
}

// Report is a whole comparison.
type Report struct {
	Machine   Machine        `json:"machine"`
	Started   time.Time      `json:"started"`
	Runs      int            `json:"runs"`
	Servers   []string       `json:"servers"`
	Scenarios []ScenarioInfo `json:"scenarios"`
	// Results holds every measurement.
	Results []Result `json:"results"`
	// Medians holds, per scenario and server, the median of each figure
	// over the runs that succeeded.
	Medians map[string]map[string]Figures `json:"medians"`
	// Ratios holds, per scenario, "our/raw" and "our/node" (and our/X for
	// any other server X), the ratio of the medians for each figure.
	Ratios  map[string]map[string]Figures `json:"ratios"`
	Targets []Target                      `json:"targets"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *Report) summarise() {
	samples := map[string]map[string]map[string][]float64{}
	for _, res := range r.Results {
		if res.Error != "" {
			continue
		}
		if samples[res.Scenario] == nil {
			samples[res.Scenario] = map[string]map[string][]float64{}
		}
		if samples[res.Scenario][res.Server] == nil {
			samples[res.Scenario][res.Server] = map[string][]float64{}
		}
		for k, v := range res.Figures {
			samples[res.Scenario][res.Server][k] = append(samples[res.Scenario][res.Server][k], v)
		}
	}
	r.Medians = map[string]map[string]Figures{}
	r.Ratios = map[string]map[string]Figures{}
	for sc, bySrv := range samples {
		r.Medians[sc] = map[string]Figures{}
		for srv, figs := range bySrv {
			m := Figures{}
			for k, v := range figs {
				m[k] = median(v)
			}
			r.Medians[sc][srv] = m
		}
		our, ok := r.Medians[sc]["our"]
		if !ok {
			continue
		}
		r.Ratios[sc] = map[string]Figures{}
		for srv, other := range r.Medians[sc] {
			if srv == "our" {
				continue
			}
			ratio := Figures{}
			for k, v := range our {
				if o, ok := other[k]; ok && o != 0 {
					ratio[k] = v / o
				}
			}
			r.Ratios[sc]["our/"+srv] = ratio
		}
	}
	r.Targets = r.targets()
}

// ratio returns the our/other ratio of a figure, if both were measured.
func (r *Report) ratio(sc, other, fig string) (float64, bool) {
	v, ok := r.Ratios[sc]["our/"+other][fig]
	return v, ok
}

// targets judges the performance targets (issues 6 and 15) on the medians.
func (r *Report) targets() []Target {
	var ts []Target
	add := func(name string, v float64, fig string, met bool) {
		ts = append(ts, Target{Name: name, Value: v, Figure: fig, Met: met})
	}
	for _, sc := range r.Scenarios {
		switch sc.Kind {
		case Echo, Pipeline:
			if v, ok := r.ratio(sc.Name, "raw", FigMsgsPerSec); ok {
				add(sc.Name+": msgs/s ≥ 0.95 × raw", v, fmt.Sprintf("%.3f × raw", v), v >= 0.95)
			}
			if v, ok := r.ratio(sc.Name, "node", FigMsgsPerSec); ok {
				add(sc.Name+": msgs/s ≥ 1.4 × node", v, fmt.Sprintf("%.3f × node", v), v >= 1.4)
			}
			if v, ok := r.ratio(sc.Name, "raw", FigServerCPUPerMsg); ok {
				add(sc.Name+": server CPU/msg ≤ 1.1 × raw", v, fmt.Sprintf("%.3f × raw", v), v <= 1.1)
			}
		case Broadcast:
			if v, ok := r.ratio(sc.Name, "raw", FigServerCPUPerMsg); ok {
				add(sc.Name+": server CPU/delivery ≤ 1.1 × raw", v, fmt.Sprintf("%.3f × raw", v), v <= 1.1)
			}
			if v, ok := r.ratio(sc.Name, "node", FigServerCPUPerMsg); ok {
				add(sc.Name+": server CPU/delivery ≤ 0.75 × node", v, fmt.Sprintf("%.3f × node", v), v <= 0.75)
			}
			if v, ok := r.ratio(sc.Name, "raw", FigMsgsPerSec); ok {
				add(sc.Name+": deliveries/s ≥ raw", v, fmt.Sprintf("%.3f × raw", v), v >= 1)
			}
			if v, ok := r.ratio(sc.Name, "raw", FigP99); ok {
				add(sc.Name+": p99 all received ≤ raw", v, fmt.Sprintf("%.3f × raw", v), v <= 1)
			}
		case Idle:
			if v, ok := r.ratio(sc.Name, "node", FigBytesPerConn); ok {
				add(sc.Name+": bytes/conn ≤ 0.75 × node", v, fmt.Sprintf("%.3f × node (%.0f B)", v, r.Medians[sc.Name]["our"][FigBytesPerConn]), v <= 0.75)
			}
			if v, ok := r.ratio(sc.Name, "raw", FigP99); ok {
				add(sc.Name+": broadcast p99 all received ≤ raw", v, fmt.Sprintf("%.3f × raw", v), v <= 1)
			}
		}
	}
	return ts
}

// Markdown writes the report as markdown tables: every figure's median per
// server with the our/X ratios, then the targets.
func (r *Report) Markdown(w io.Writer) {
	var others []string
	for _, s := range r.Servers {
		if s != "our" {
			others = append(others, s)
		}
	}
	hasOur := slices.Contains(r.Servers, "our")
	head := "| Scenario | Figure |"
	sep := "|---|---|"
	for _, s := range r.Servers {
		head += " " + s + " |"
		sep += "---:|"
	}
	if hasOur {
		for _, s := range others {
			head += " our/" + s + " |"
			sep += "---:|"
		}
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, sc := range r.Scenarios {
		for i, fi := range figuresFor(sc.Kind) {
			name := ""
			if i == 0 {
				name = "**" + sc.Name + "**<br>" + sc.Description
			}
			row := "| " + name + " | " + fi.label + " |"
			for _, s := range r.Servers {
				v, ok := r.Medians[sc.Name][s][fi.key]
				if !ok || math.IsNaN(v) {
					row += " — |"
					continue
				}
				row += " " + fi.format(v) + " |"
			}
			if hasOur {
				for _, s := range others {
					if v, ok := r.ratio(sc.Name, s, fi.key); ok && fi.key != FigOtherCPUPc {
						row += fmt.Sprintf(" %.2f |", v)
					} else {
						row += " — |"
					}
				}
			}
			fmt.Fprintln(w, row)
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| Target | Figure | Met |")
		fmt.Fprintln(w, "|---|---:|:---:|")
		for _, t := range r.Targets {
			met := "no"
			if t.Met {
				met = "yes"
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", t.Name, t.Figure, met)
		}
	}
	var failed []string
	for _, res := range r.Results {
		if res.Error != "" {
			failed = append(failed, fmt.Sprintf("- %s on %s, run %d: %s", res.Scenario, res.Server, res.Run, strings.ReplaceAll(res.Error, "\n", " ")))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Failed measurements (left out of the medians):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(failed, "\n"))
	}
}
