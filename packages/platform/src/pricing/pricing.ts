/**
 * What metering asks of pricing on every call through the gateway: the price of one call
 * of an endpoint and its free monthly quota. The answer is synchronous (resolved from
 * what pricing keeps in memory), so that an unpriced call costs a map lookup and no await.
 */
export interface EndpointPrice {
  /** units (10^-6 USD) charged per successful call beyond the free quota; 0: free, but counted */
  price: number;
  /** successful calls a month each payer makes free of charge (0: none) */
  freeQuota: number;
}

/** the price fields an endpoint may carry in its definition and registry record */
export interface PricedEndpoint {
  name: string;
  price?: number;
  freeQuota?: number;
}

export interface Pricing {
  /**
   * The price of `service.endpoint` as served from namespace `home` (`micro` for the
   * platform's services), from an admin's setting over the endpoint's own definition;
   * undefined: the endpoint is neither priced nor quota-counted, and is not metered.
   */
  priceOf(home: string, service: string, endpoint: PricedEndpoint): EndpointPrice | undefined;
}
