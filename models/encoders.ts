// The paper's MNIST encoder (Table 5): three 3x3 convolutions, stride 1, padding 1, ReLU after
// the first two, flatten, and a linear layer to the latent parameters. The paper does not give
// the channel count; it is a parameter here and every experiment records the one it used.
import * as sg from '../engine/index.js';

export interface EncoderOptions {
  channels: number;
  /** Width of the output: parametersPerLatent x latent dimension. */
  outputs: number;
  stream: sg.RandomStream;
  backend?: sg.Backend;
  dtype?: sg.DType;
  height?: number;
  width?: number;
}

export function table5Encoder(o: EncoderOptions): sg.nn.Sequential {
  const { channels: c } = o;
  const conv = (inChannels: number): sg.nn.Conv2d => new sg.nn.Conv2d(inChannels, c, 3, { ...o, stride: 1, padding: 1 });
  return new sg.nn.Sequential(
    conv(1), sg.nn.ReLU(),
    conv(c), sg.nn.ReLU(),
    conv(c),
    sg.nn.Flatten(),
    new sg.nn.Linear(c * (o.height ?? 28) * (o.width ?? 28), o.outputs, o),
  );
}
