package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
)

// writeChart draws one panel per metric with one horizontal bar per target
// (the median) and a whisker for the min–max range.
func writeChart(rf *runFile, targets []string, path string) error {
	const (
		scale   = 2
		cols    = 3
		panelW  = 620
		barH    = 18
		gap     = 6
		titleH  = 34
		pad     = 16
		headerH = 50
	)
	labelW := 0
	for _, t := range targets {
		labelW = max(labelW, textWidth(t, scale))
	}
	labelW += 10
	var shown []metric
	for _, mt := range metrics {
		for _, t := range targets {
			if _, ok := stats(rf.Samples, t, mt.ID); ok {
				shown = append(shown, mt)
				break
			}
		}
	}
	panelH := titleH + len(targets)*(barH+gap) + pad
	rows := (len(shown) + cols - 1) / cols
	W, H := cols*panelW+pad, headerH+rows*panelH+pad
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{255, 255, 255, 255}}, image.Point{}, draw.Src)
	ink := color.RGBA{30, 30, 30, 255}
	grey := color.RGBA{120, 120, 120, 255}
	m := rf.Machine
	drawText(img, pad, 10, fmt.Sprintf("socksd bench %s: median of reps, whisker = min-max", rf.Mode), scale, ink)
	drawText(img, pad, 30, fmt.Sprintf("%d cpu, kernel %s, %s, load %s", m.NProc, m.Kernel, m.GoVer, rf.LoadStart), scale, grey)

	palette := []color.RGBA{
		{90, 90, 90, 255}, {31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255},
		{148, 103, 189, 255}, {214, 39, 40, 255}, {227, 119, 194, 255}, {140, 86, 75, 255},
	}
	for i, mt := range shown {
		x0 := pad + (i%cols)*panelW
		y0 := headerH + (i/cols)*panelH
		better := "higher is better"
		if !mt.Higher {
			better = "lower is better"
		}
		drawText(img, x0, y0+4, fmt.Sprintf("%s (%s)", mt.Label, mt.Unit), scale, ink)
		drawText(img, x0, y0+20, better, 1, grey)
		top := 0.0
		for _, t := range targets {
			if st, ok := stats(rf.Samples, t, mt.ID); ok {
				top = max(top, st.Max)
			}
		}
		if top <= 0 {
			top = 1
		}
		barMax := panelW - labelW - 110
		for j, t := range targets {
			y := y0 + titleH + j*(barH+gap)
			drawText(img, x0, y+2, t, scale, ink)
			st, ok := stats(rf.Samples, t, mt.ID)
			if !ok {
				drawText(img, x0+labelW, y+2, "-", scale, grey)
				continue
			}
			bx := x0 + labelW
			w := int(st.Med / top * float64(barMax))
			draw.Draw(img, image.Rect(bx, y, bx+max(w, 1), y+barH), &image.Uniform{palette[j%len(palette)]}, image.Point{}, draw.Src)
			// Whisker: min–max.
			lo, hi := bx+int(st.Min/top*float64(barMax)), bx+int(st.Max/top*float64(barMax))
			for x := lo; x <= hi; x++ {
				img.SetRGBA(x, y+barH/2, ink)
			}
			for dy := 3; dy < barH-3; dy++ {
				img.SetRGBA(lo, y+dy, ink)
				img.SetRGBA(hi, y+dy, ink)
			}
			drawText(img, bx+max(w, hi-bx)+6, y+2, fmt.Sprintf(mt.Format, st.Med), scale, ink)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
