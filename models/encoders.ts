// The paper's encoders (App. B.2). The paper does not give channel counts; they are a
// parameter here and every experiment records the one it used. Both take images [B, C, H, W]:
// a flattened batch [B, C*H*W] from experiments/data (channel-major) reshapes to it for free.
import * as sg from '../silentgrad.js';

export interface EncoderOptions {
  channels: number;
  /** Width of the output: parametersPerLatent x latent dimension. */
  outputs: number;
  stream: sg.RandomStream;
  backend?: sg.Backend;
  dtype?: sg.DType;
  /** Colour channels of the input: 1 for table5Encoder, 3 for table7Encoder unless given. */
  imageChannels?: number;
  height?: number;
  width?: number;
}

/**
 * MNIST (Table 5): three 3x3 convolutions, stride 1, padding 1, ReLU after the first two,
 * flatten, and a linear layer to the latent parameters. Input [B, 1, 28, 28].
 */
export function table5Encoder(o: EncoderOptions): sg.nn.Sequential {
  const { channels: c } = o;
  const conv = (inChannels: number): sg.nn.Conv2d => new sg.nn.Conv2d(inChannels, c, 3, { ...o, stride: 1, padding: 1 });
  return new sg.nn.Sequential(
    conv(o.imageChannels ?? 1), sg.nn.ReLU(),
    conv(c), sg.nn.ReLU(),
    conv(c),
    sg.nn.Flatten(),
    new sg.nn.Linear(c * (o.height ?? 28) * (o.width ?? 28), o.outputs, o),
  );
}

/**
 * CIFAR-10 and ImageNet 32x32 (Table 7): four 4x4 convolutions, the first three stride 2 and
 * padding 1 (32 -> 16 -> 8 -> 4), the last stride 1 and padding 0 (4 -> 1), each followed by ReLU
 * and then BatchNorm2d in the table's order; flatten, and a linear layer. Input [B, 3, 32, 32].
 * The paper gives no widths: here they double from `channels`, c -> 2c -> 4c -> 8c, as in
 * DCGAN-style encoders, so the last feature map is 8c x 1 x 1 (table8Decoder mirrors it).
 * Batch norm uses batch statistics under train() and running ones under eval().
 */
export function table7Encoder(o: EncoderOptions): sg.nn.Sequential {
  const { channels: c } = o;
  const layer = { stream: o.stream, backend: o.backend, dtype: o.dtype };
  const block = (inChannels: number, outChannels: number, stride: number, padding: number): sg.nn.Module[] => [
    new sg.nn.Conv2d(inChannels, outChannels, 4, { ...layer, stride, padding }),
    sg.nn.ReLU(),
    new sg.nn.BatchNorm2d(outChannels, { backend: o.backend, dtype: o.dtype }),
  ];
  // A 4x4 stride-2 padding-1 convolution halves a side (rounding down); the last one takes 3 off.
  const side = (n: number): number => Math.floor(n / 8) - 3;
  const height = side(o.height ?? 32), width = side(o.width ?? 32);
  if (height < 1 || width < 1)
    throw new Error(`table7Encoder: a ${o.height ?? 32}x${o.width ?? 32} image is too small for its four 4x4 convolutions (needs at least 32x32)`);
  return new sg.nn.Sequential(
    ...block(o.imageChannels ?? 3, c, 2, 1),
    ...block(c, 2 * c, 2, 1),
    ...block(2 * c, 4 * c, 2, 1),
    ...block(4 * c, 8 * c, 1, 0),
    sg.nn.Flatten(),
    new sg.nn.Linear(8 * c * height * width, o.outputs, layer),
  );
}
